"""Readiness: what a replica needs before the load balancer sends it traffic."""

from __future__ import annotations

from pathlib import Path

from keel.contract import parse_contract
from keel.project import Project
from keel.runtime import Runtime
from tests.support.database import project_database

PLAIN = """
models:
  - {name: upstream, provider: openai_compatible, base_url: "http://127.0.0.1:9/v1", upstream_model: m}
apps:
  - {name: plain, retrieval: false}
"""


def _runtime(root: Path, contract: str) -> Runtime:
    data = root / ".keel"
    return Runtime(Project(root=root, data_dir=data, contract=parse_contract(contract), **project_database(data)))


def test_an_app_that_grounds_answers_needs_an_index_to_be_ready(tmp_path: Path) -> None:
    status = _runtime(tmp_path, "").readiness()
    assert status["index"].ready is False and "keel ingest" in status["index"].detail
    assert status["store"].ready is True


def test_a_gateway_without_retrieval_apps_is_ready_without_an_index(tmp_path: Path) -> None:
    status = _runtime(tmp_path, PLAIN).readiness()
    assert status["index"].ready is True and "no app uses retrieval" in status["index"].detail
    assert status["store"].detail.split()[0] in ("sqlite", "postgresql")
