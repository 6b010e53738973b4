"""Back-pressure and graceful shutdown against a real ``keel serve`` and a slow upstream.

Over its in-flight limit a replica sheds at once with 503 and Retry-After (never a 500,
never a hang); on SIGTERM it drains: requests in flight finish, readiness and new
requests answer 503, the process exits 0 and every finished request's trace is stored.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server
from tests.support.database import database_at
from tests.support.fault_upstream import FaultUpstream

CONTRACT = """
models:
  - {{name: extractive, provider: extractive, tier: extractive}}
  - name: upstream
    provider: openai_compatible
    base_url: {url}
    tier: small
    max_concurrency: 8
    timeouts: {{connect_s: 2, first_token_s: 20, stall_s: 20, total_s: 30}}
    retries: {{max_attempts: 1}}
  - name: narrow
    provider: openai_compatible
    base_url: {url}
    tier: small
    max_concurrency: 1
    max_queue: 0
    timeouts: {{connect_s: 2, first_token_s: 20, stall_s: 20, total_s: 30}}
    retries: {{max_attempts: 1}}
routing:
  default_model: upstream
  cache: {{exact: false, semantic: false}}
apps:
  - {{name: default}}
  - {{name: chat, retrieval: false}}
  - {{name: tight, retrieval: false, pins: {{model: narrow}}}}
sources:
  - {{name: all-staff, path: all-staff, groups: [everyone]}}
server: {{max_in_flight: 2, max_queue: 2, max_queue_ms: 500}}
"""

SLOW_S = 1.5


def _chat(url: str, key: str, app: str = "chat", request_id: str | None = None) -> httpx.Response:
    headers = auth(key) | ({"X-Request-ID": request_id} if request_id else {})
    body = {"model": app, "messages": [{"role": "user", "content": "Say one sentence about onboarding."}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def _serve(root: Path, embedder: Any, upstream: FaultUpstream, log: Path, **env: str) -> tuple[RunningServer, str]:
    small_project(root, embedder, folders=["all-staff"], contract=CONTRACT.format(url=upstream.base_url))
    from keel.identity import KeyStore
    from tests.support.database import database_at

    db = database_at(root / ".keel" / "keel.db")
    key = KeyStore(db).create(principal_id="ana", tenant="acme", groups=[], roles=["user"]).secret
    db.close()
    return start_server(root, log, extra_env=env), key


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with FaultUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any, upstream: FaultUpstream
) -> Iterator[tuple[RunningServer, str]]:
    root = tmp_path_factory.mktemp("backpressure") / "p"
    server, key = _serve(root, embedder, upstream, tmp_path_factory.mktemp("logs") / "backpressure.log")
    yield server, key
    stop_server(server)


def _timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_excess_requests_are_shed_at_once_with_overloaded_and_retry_after(
    served: tuple[RunningServer, str], upstream: FaultUpstream
) -> None:
    server, key = served
    upstream.state.mode, upstream.state.times, upstream.state.delay_s = "slow_first_byte", None, SLOW_S
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: _timed(lambda: _chat(server.url, key)), range(20)))
    finally:
        upstream.state.mode = "ok"
    statuses = [r.status_code for r, _ in results]
    assert set(statuses) <= {200, 503}, statuses
    served_ok = [(r, t) for r, t in results if r.status_code == 200]
    shed = [(r, t) for r, t in results if r.status_code == 503]
    assert 2 <= len(served_ok) <= 4, statuses  # two at a time; at most the two queued behind them get a slot
    assert len(shed) >= 16, statuses
    for response, took in shed:
        error = response.json()["error"]
        assert error["code"] == "overloaded"
        assert error["request_id"] == response.headers["x-request-id"]
        assert int(response.headers["retry-after"]) >= 1
        assert took < SLOW_S + 1.0, f"shed after {took:.2f} s"  # the queue limit is 0.5 s, not a slow answer
    assert all(took >= SLOW_S for _, took in served_ok)
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    counted = next(
        line for line in metrics.splitlines() if line.startswith('keel_shed_requests_total{reason="overloaded"}')
    )
    assert float(counted.split()[-1]) >= len(shed)
    assert "keel_inflight_requests 0.0" in metrics and "keel_queued_requests 0.0" in metrics
    # Health, readiness and metrics are never gated.
    assert httpx.get(server.url + "/readyz", timeout=30).status_code == 200


def test_a_full_model_queue_answers_model_busy_with_retry_after(
    served: tuple[RunningServer, str], upstream: FaultUpstream
) -> None:
    server, key = served
    upstream.state.mode, upstream.state.times, upstream.state.delay_s = "slow_first_byte", None, SLOW_S
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda _: _chat(server.url, key, app="tight"), range(2)))
    finally:
        upstream.state.mode = "ok"
    codes = sorted(r.json()["error"]["code"] if r.status_code != 200 else "ok" for r in results)
    assert codes == ["model_busy", "ok"], [r.text for r in results]
    busy = next(r for r in results if r.status_code != 200)
    assert busy.status_code == 503 and int(busy.headers["retry-after"]) >= 1
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    assert 'keel_shed_requests_total{reason="model_busy"} 1.0' in metrics


def test_sigterm_drains_requests_in_flight_then_exits_cleanly_with_every_trace_stored(
    tmp_path: Path, embedder: Any, upstream: FaultUpstream
) -> None:
    root = tmp_path / "p"
    grace_s = 20
    server, key = _serve(root, embedder, upstream, tmp_path / "drain.log", KEEL_SHUTDOWN_GRACE_S=str(grace_s))
    upstream.state.mode, upstream.state.times, upstream.state.delay_s = "slow_first_byte", None, 3.0
    before = upstream.state.requests
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            running = [pool.submit(_chat, server.url, key, "chat", f"drain-{n}") for n in range(2)]
            deadline = time.monotonic() + 30
            while upstream.state.requests < before + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert upstream.state.requests == before + 2, "both requests reached the upstream"
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(0.3)
            ready = httpx.get(server.url + "/readyz", timeout=10)
            assert ready.status_code == 503 and ready.json()["status"] == "shutting_down"
            refused = _chat(server.url, key, request_id="after-sigterm")
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
            assert int(refused.headers["retry-after"]) >= 1
            responses = [f.result(timeout=60) for f in running]
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert server.process.wait(timeout=grace_s + 10) == 0
        assert time.monotonic() - signalled < grace_s
    finally:
        upstream.state.mode = "ok"
        stop_server(server)
    db = database_at(root / ".keel" / "keel.db")
    try:
        stored = {r[0]: r[1] for r in db.connection().execute("SELECT request_id, status FROM traces")}
    finally:
        db.close()
    assert stored.get("drain-0") == 200 and stored.get("drain-1") == 200
    assert "after-sigterm" not in stored  # refused before the pipeline
