"""Two replicas of `keel serve` share their answer caches through a real redis-server, within permission scopes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

CONTRACT = """
models:
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: smollm2-135m, max_output_tokens: 16}
apps:
  - {name: default, pins: {model: extractive}}
routing:
  cache: {exact: true, semantic: true, shared_state: redis}
sources:
  - {name: all-staff, path: all-staff, groups: [everyone]}
"""
QUESTION = "What is the daily meal allowance when travelling?"


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Any,
    redis_server: RedisServer,  # noqa: F811
) -> Iterator[tuple[list[RunningServer], dict[str, str]]]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    root = tmp_path_factory.mktemp("cache-replicas") / "proj"
    small_project(root, embedder, folders=["all-staff"], contract=CONTRACT)
    db = database_at(root / ".keel" / "keel.db")
    store = KeyStore(db)
    keys = {
        who: store.create(principal_id=who, tenant="acme", groups=groups, roles=["user"]).secret
        for who, groups in (("sam", []), ("sue", []), ("eli", ["engineering"]))
    }
    db.close()
    env = {"KEEL_REDIS_URL": redis_server.url}
    servers = [start_server(root, root / f"replica{i}.log", extra_env=env) for i in range(2)]
    yield servers, keys
    for server in servers:
        stop_server(server)


def _ask(server: RunningServer, key: str, question: str) -> dict[str, Any]:
    response = httpx.post(server.url + "/v1/ask", json={"question": question}, headers=auth(key), timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_answer_from_one_replica_is_a_hit_on_the_other_for_the_same_permissions_only(
    replicas: tuple[list[RunningServer], dict[str, str]],
) -> None:
    (a, b), keys = replicas
    first = _ask(a, keys["sam"], QUESTION)
    assert first["mode"] == "answer" and first["cache"] == "miss", first
    again = _ask(b, keys["sue"], QUESTION)  # another user, the same tenant and groups, the other replica
    assert again["cache"] == "exact" and again["answer"] == first["answer"]
    assert [c["id"] for c in again["citations"]] == [c["id"] for c in first["citations"]]
    other = _ask(b, keys["eli"], QUESTION)  # may read the document, but has other groups: another scope
    assert other["cache"] == "miss", other
    assert _ask(a, keys["eli"], QUESTION)["cache"] == "exact"  # eli's own entry, shared too
