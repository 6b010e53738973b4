"""Two replicas of `keel serve` share their rate limits through a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

LIMIT = 6
CONTRACT = f"""
models:
  - {{name: extractive, provider: extractive, tier: extractive}}
  - {{name: smollm2-135m, max_output_tokens: 16}}
apps:
  - {{name: default, pins: {{model: extractive}}}}
routing:
  cache: {{exact: false, semantic: false}}
rate_limits:
  backend: redis
  limits:
    - {{scope: tenant, requests_per_minute: {LIMIT}}}
sources:
  - {{name: all-staff, path: all-staff, groups: [everyone]}}
"""


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Any,
    redis_server: RedisServer,  # noqa: F811
) -> Iterator[tuple[list[RunningServer], str]]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    root = tmp_path_factory.mktemp("replicas") / "proj"
    small_project(root, embedder, folders=["all-staff"], contract=CONTRACT)
    db = database_at(root / ".keel" / "keel.db")
    key = KeyStore(db).create(principal_id="sam", tenant="acme", groups=[], roles=["user"]).secret
    db.close()
    env = {"KEEL_REDIS_URL": redis_server.url}
    servers = [start_server(root, root / f"replica{i}.log", extra_env=env) for i in range(2)]
    yield servers, key
    for server in servers:
        stop_server(server)


def test_a_tenant_limit_holds_across_replicas(replicas: tuple[list[RunningServer], str]) -> None:
    servers, key = replicas

    def ask(i: int) -> int:
        url = servers[i % 2].url + "/v1/ask"
        return httpx.post(url, json={"question": "When is pay day?"}, headers=auth(key), timeout=60).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(ask, range(LIMIT + 4)))
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == 4, statuses
