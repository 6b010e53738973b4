"""Re-ingesting while the server runs: ids stay stable, deleted documents leave the results."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SAMPLE_PROJECT
from tests.integration.conftest import RunningServer, auth, create_keys, ingest, start_server, stop_server
from tests.integration.corpus import documents


@pytest.fixture(scope="module")
def small_project(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[tuple[Path, RunningServer, str]]:
    root = tmp_path_factory.mktemp("reingest") / "proj"
    (root / "docs").mkdir(parents=True)
    shutil.copy(SAMPLE_PROJECT / "keel.yaml", root / "keel.yaml")
    shutil.copy(SAMPLE_PROJECT / "principals.yaml", root / "principals.yaml")
    for folder in ("all-staff", "hr"):
        shutil.copytree(SAMPLE_PROJECT / "docs" / folder, root / "docs" / folder)
    ingest(root, embedder)
    keys, _, _ = create_keys(root, root / "principals.yaml")
    server = start_server(root, root / "server.log")
    yield root, server, keys["hana.hr"]
    stop_server(server)


def _sources(url: str, key: str, question: str) -> list[str]:
    body = httpx.post(url + "/v1/ask", json={"question": question, "top_k": 4}, headers=auth(key), timeout=120).json()
    trace = httpx.get(f"{url}/v1/traces/{body['request_id']}", headers=auth(key), timeout=30).json()
    retrieve = next(s for s in trace["spans"] if s["name"] == "retrieve")
    return [h["source"] for h in retrieve["attributes"]["hits"]]


def test_reingest_keeps_ids_and_the_server_drops_deleted_documents(
    small_project: tuple[Path, RunningServer, str], embedder: Any
) -> None:
    root, server, key = small_project
    before = {d.path: d.chunk_ids for d in documents(root)}
    bands = next(p for p in before if p.startswith("hr/") and "salary" in p)
    question = "What is the salary band for a Senior Software Engineer (L5)?"
    assert bands in _sources(server.url, key, question)

    report = ingest(root, embedder)
    assert not report.changed and report.version == report.previous_version
    assert {d.path: d.chunk_ids for d in documents(root)} == before

    (root / "docs" / bands).unlink()
    report = ingest(root, embedder)
    assert report.deleted == [bands]
    after = {d.path: d.chunk_ids for d in documents(root)}
    assert bands not in after
    assert all(after[p] == ids for p, ids in before.items() if p != bands)
    assert bands not in _sources(server.url, key, question)
