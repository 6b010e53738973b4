"""The SLO burn rates follow a real upstream: a real Keel server in front of a fault-injecting
OpenAI-compatible upstream. Fast, nothing burns; the upstream slows past the p95 target (but
within its timeouts), the latency burn rate rises past the threshold and the served watch
raises the latency alert; it slows past its timeouts, requests fail with 503 and the
availability alert fires too."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.contract import load_contract
from keel.ops.slo import SloReport, compute_slo
from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server
from tests.support.database import database_at
from tests.support.fault_upstream import FaultUpstream
from tests.support.webhook import WebhookHandler, webhook_receiver

CONTRACT = """
slo:
  p95_latency_ms: 200
  availability: 0.99
  burn_rate_alerts: [{{long_minutes: 60, short_minutes: 5, threshold: 5}}]
  alert_webhook: {hook}
  check_interval_s: 1
models:
  - name: upstream
    provider: openai_compatible
    base_url: {url}
    tier: small
    max_concurrency: 4
    timeouts: {{connect_s: 1, first_token_s: 1, stall_s: 1, total_s: 1.5}}
    retries: {{max_attempts: 1}}
    breaker: {{failures: 3, window_s: 60, cooldown_s: 60}}
    price: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}
routing:
  cache: {{exact: false, semantic: false}}
  fallback: [next_model]
apps:
  - {{name: plain, retrieval: false}}
sources:
  - {{name: all-staff, path: all-staff, groups: [everyone]}}
"""

QUESTION = "Write one friendly sentence to welcome a new colleague to the team."
REQUESTS = 20
SLOW_S = 0.4  # over the 200 ms target, under the timeouts (first token 1 s, total 1.5 s)
DEAD_S = 3.0  # beyond them


@dataclass(frozen=True, kw_only=True)
class Served:
    root: Path
    server: RunningServer
    upstream: FaultUpstream
    key: str


@pytest.fixture(scope="module")
def hook() -> Iterator[str]:
    with webhook_receiver() as url:
        yield url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedder: Any, hook: str) -> Iterator[Served]:
    from keel.identity import KeyStore

    root = tmp_path_factory.mktemp("slo-burn") / "proj"
    with FaultUpstream() as upstream:
        small_project(root, embedder, folders=["all-staff"], contract=CONTRACT.format(url=upstream.base_url, hook=hook))
        db = database_at(root / ".keel" / "keel.db")
        key = KeyStore(db).create(principal_id="sam", tenant="larkspur", groups=[], roles=["user"]).secret
        db.close()
        server = start_server(root, root / "server.log")
        try:
            yield Served(root=root, server=server, upstream=upstream, key=key)
        finally:
            stop_server(server)


def ask(served: Served, n: int) -> list[tuple[int, float]]:
    """``n`` requests to the plain app, one after another: (status, seconds) each."""
    out = []
    with httpx.Client(base_url=served.server.url, headers=auth(served.key), timeout=30) as client:
        for _ in range(n):
            start = time.monotonic()
            response = client.post("/v1/ask", json={"question": QUESTION, "app": "plain"})
            out.append((response.status_code, time.monotonic() - start))
    return out


def traced(root: Path) -> int:
    db = database_at(root / ".keel" / "keel.db")
    try:
        return int(db.connection().execute("SELECT COUNT(*) FROM traces").fetchone()[0])
    finally:
        db.close()


def report_after(served: Served, requests: int) -> SloReport:
    """The SLO report once ``requests`` traces are stored (they are written off the response path)."""
    deadline = time.monotonic() + 30
    while traced(served.root) < requests:
        assert time.monotonic() < deadline, f"only {traced(served.root)} of {requests} traces were stored"
        time.sleep(0.1)
    db = database_at(served.root / ".keel" / "keel.db")
    try:
        return compute_slo(db, load_contract(served.root / "keel.yaml").slo)
    finally:
        db.close()


def burns(report: SloReport) -> dict[str, tuple[float, float, bool]]:
    return {a.slo: (a.long_burn, a.short_burn, a.firing) for a in report.alerts}


def audited_alerts(root: Path) -> list[str]:
    db = database_at(root / ".keel" / "keel.db")
    try:
        sql = "SELECT subject FROM audit_log WHERE action = 'slo.alert' ORDER BY seq"
        return [str(r[0]) for r in db.connection().execute(sql).fetchall()]
    finally:
        db.close()


def wait_for_alert(root: Path, name: str) -> list[str]:
    deadline = time.monotonic() + 15
    while name not in (seen := audited_alerts(root)):
        assert time.monotonic() < deadline, f"the watch did not raise {name}: {seen}"
        time.sleep(0.2)
    return seen


def keel_slo(root: Path) -> tuple[int, dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), "slo", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out.returncode, json.loads(out.stdout)


def test_the_burn_rates_rise_when_the_upstream_slows_down_and_the_alerts_fire(served: Served) -> None:
    served.upstream.state.mode = "ok"
    fast = ask(served, REQUESTS)
    assert all(status == 200 for status, _ in fast), fast
    before = report_after(served, REQUESTS)
    assert before.failures == 0 and before.slow <= 1  # ~20 ms each; one hiccup on a busy machine is allowed
    assert burns(before)["availability"] == (0.0, 0.0, False)
    assert burns(before)["latency"][1] <= 1.0 and not burns(before)["latency"][2]
    code, body = keel_slo(served.root)
    assert code == 0 and not any(a["firing"] for a in body["alerts"])
    assert audited_alerts(served.root) == []

    # Slower than the p95 target, within the timeouts: still served, every one slow.
    served.upstream.state.mode, served.upstream.state.delay_s = "slow_first_byte", SLOW_S
    slow = ask(served, REQUESTS)
    assert all(status == 200 and seconds > SLOW_S for status, seconds in slow), slow
    during = report_after(served, 2 * REQUESTS)
    latency_long, latency_short, latency_firing = burns(during)["latency"]
    assert during.slow - before.slow == REQUESTS and during.failures == 0
    assert latency_short >= 0.5 / 0.05 and latency_long >= 0.5 / 0.05  # half the traffic slow: 10x the 5%
    assert latency_firing and not burns(during)["availability"][2]
    assert during.latency_budget_remaining is not None and during.latency_budget_remaining < 0
    code, body = keel_slo(served.root)
    assert code == 1
    assert [(a["slo"], a["firing"]) for a in body["alerts"]] == [("availability", False), ("latency", True)]
    assert wait_for_alert(served.root, "latency:60/5") == ["latency:60/5"]

    # Past the timeouts: the upstream times out, the breaker opens, requests fail with 503.
    served.upstream.state.delay_s = DEAD_S
    dead = ask(served, REQUESTS // 2)
    assert all(status == 503 for status, _ in dead), dead
    after = report_after(served, 2 * REQUESTS + REQUESTS // 2)
    availability_long, availability_short, availability_firing = burns(after)["availability"]
    assert after.failures == REQUESTS // 2
    assert availability_short == availability_long == pytest.approx((10 / 50) / 0.01)  # 20x the 1%
    assert availability_firing
    assert burns(after)["latency"][2], "the slow requests still burn the latency budget"
    assert wait_for_alert(served.root, "availability:60/5") == ["latency:60/5", "availability:60/5"]
    hooks = [(p["slo"], p["firing"]) for p in WebhookHandler.received]
    assert hooks == [("latency", True), ("availability", True)]
    assert "latency budget (requests slower than 200 ms)" in WebhookHandler.received[0]["message"]
