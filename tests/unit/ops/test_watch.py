"""The watch raises SLO and anomaly events once when they start and once when they end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.audit import AuditLog
from keel.contract import parse_contract
from keel.ops.watch import Watch
from keel.policy.pii import redact
from tests.support.database import database_at
from tests.support.webhook import WebhookHandler, webhook_receiver
from tests.unit.ops.test_slo import _add

NOW = 1_800_000_000.0


@pytest.fixture
def receiver() -> Iterator[str]:
    with webhook_receiver() as url:
        yield url


def test_an_alert_is_raised_once_and_resolved_once(tmp_path: Path, receiver: str) -> None:
    contract = parse_contract(
        "slo:\n  availability: 0.99\n  alert_webhook: " + receiver + "\n"
        "  burn_rate_alerts: [{long_minutes: 60, short_minutes: 5, threshold: 10}]\n"
    )
    db = database_at(tmp_path / "k.db")
    audit = AuditLog(db, redact=redact)
    clock = [NOW]
    watch = Watch(contract, db=db, audit=audit, clock=lambda: clock[0])
    try:
        assert watch.check() == []
        _add(db, [(NOW - 10 - i, 500, 5.0) for i in range(20)])
        assert watch.check() == ["slo.alert:availability:60/5"]
        assert watch.check() == []  # still firing: nothing repeated
        clock[0] = NOW + 2 * 3600  # the failures age out of both windows
        assert watch.check() == ["slo.resolved:availability:60/5"]
        assert [r.action for r in audit.records(action="slo")] == ["slo.alert", "slo.resolved"]
        assert len(WebhookHandler.received) == 1 and WebhookHandler.received[0]["firing"]
        assert WebhookHandler.received[0]["slo"] == "availability"
        assert audit.verify().ok
    finally:
        audit.close()
        db.close()


def test_a_latency_alert_is_raised_and_resolved_apart_from_availability(tmp_path: Path, receiver: str) -> None:
    contract = parse_contract(
        "slo:\n  p95_latency_ms: 200\n  availability: 0.99\n  alert_webhook: " + receiver + "\n"
        "  burn_rate_alerts: [{long_minutes: 60, short_minutes: 5, threshold: 10}]\n"
    )
    db = database_at(tmp_path / "k.db")
    audit = AuditLog(db, redact=redact)
    clock = [NOW]
    watch = Watch(contract, db=db, audit=audit, clock=lambda: clock[0])
    try:
        _add(db, [(NOW - 10 - i, 200, 50.0) for i in range(20)])
        assert watch.check() == []  # fast traffic
        _add(db, [(NOW - 5 - i / 10, 200, 900.0) for i in range(40)])
        assert watch.check() == ["slo.alert:latency:60/5"]
        clock[0] = NOW + 30
        _add(db, [(NOW + 20 - i / 10, 503, 5.0) for i in range(30)])
        assert watch.check() == ["slo.alert:availability:60/5"]  # the latency alert is not raised again
        assert watch.check() == []
        clock[0] = NOW + 2 * 3600
        assert watch.check() == ["slo.resolved:availability:60/5", "slo.resolved:latency:60/5"]
        records = list(audit.records(action="slo"))
        assert [(r.action, r.subject) for r in records] == [
            ("slo.alert", "latency:60/5"),
            ("slo.alert", "availability:60/5"),
            ("slo.resolved", "availability:60/5"),
            ("slo.resolved", "latency:60/5"),
        ]
        assert records[0].data["slo"] == "latency" and records[0].data["firing"]
        assert [p["slo"] for p in WebhookHandler.received] == ["latency", "availability"]
        assert "latency budget (requests slower than 200 ms)" in WebhookHandler.received[0]["message"]
        assert audit.verify().ok
    finally:
        audit.close()
        db.close()
