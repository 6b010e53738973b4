"""SLOs from recorded requests: availability, p95, error and latency budgets, multi-window burn-rate alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.contract import BurnRateAlert, SloSettings
from keel.ops.slo import AlertState, SloReport, compute_slo, hourly_series, notify, sparkline
from keel.store import Database
from tests.support.database import database_at
from tests.support.webhook import WebhookHandler, webhook_receiver

NOW = 1_800_000_000.0
SLO = SloSettings(
    p95_latency_ms=1000,
    availability=0.99,
    error_budget_window_days=30,
    burn_rate_alerts=[BurnRateAlert(long_minutes=60, short_minutes=5, threshold=10.0)],
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = database_at(tmp_path / "k.db")
    yield database
    database.close()


def _add(db: Database, rows: list[tuple[float, int, float]]) -> None:
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status, latency_ms,"
            " data_json) VALUES (?, ?, 'p', 't', 'default', 'ask', 'answer', ?, ?, '{}')",
            [(f"r{i}-{at}", at, status, ms) for i, (at, status, ms) in enumerate(rows)],
        )


def test_a_quiet_month_keeps_its_budget(db: Database) -> None:
    _add(db, [(NOW - 86400 * d - 60, 200, 100.0 + d) for d in range(20)] + [(NOW - 86400 * 3, 503, 5.0)])
    report = compute_slo(db, SLO, now=NOW)
    assert report.requests == 21 and report.failures == 1
    assert report.availability == pytest.approx(20 / 21, abs=1e-6)
    assert report.error_budget_remaining == pytest.approx(1 - 1 / (0.01 * 21), abs=1e-3)
    assert report.p95_latency_ms is not None and report.p95_latency_ms < 1000 and report.latency_ok
    assert not any(a.firing for a in report.alerts)
    assert [a.key for a in report.alerts] == ["availability:60/5", "latency:60/5"]


def test_client_errors_and_hang_ups_do_not_spend_the_budget(db: Database) -> None:
    _add(db, [(NOW - 100, 400, 5.0), (NOW - 90, 401, 5.0), (NOW - 80, 499, 5.0), (NOW - 70, 200, 50.0)])
    report = compute_slo(db, SLO, now=NOW)
    assert report.failures == 0 and report.requests == 3


def test_an_alert_fires_only_when_both_windows_burn(db: Database) -> None:
    # An outage 40 minutes ago, over now: the long window burns, the short one does not.
    _add(db, [(NOW - 2400 - i, 500, 5.0) for i in range(30)] + [(NOW - 60 - i, 200, 5.0) for i in range(30)])
    report = compute_slo(db, SLO, now=NOW)
    alert = report.alerts[0]
    assert alert.slo == "availability"
    assert alert.long_burn > 10 and alert.short_burn == 0 and not alert.firing
    # Failing again now: both windows burn.
    _add(db, [(NOW - 10 - i, 500, 5.0) for i in range(30)])
    assert compute_slo(db, SLO, now=NOW).alerts[0].firing


def _latency(report: SloReport) -> AlertState:
    return next(a for a in report.alerts if a.slo == "latency")


def _availability(report: SloReport) -> AlertState:
    return next(a for a in report.alerts if a.slo == "availability")


def test_slow_requests_burn_the_latency_budget_while_availability_is_fine(db: Database) -> None:
    # An hour of fast traffic, then in the last five minutes three in four over the 1000 ms target.
    _add(db, [(NOW - 3500 + i * 10, 200, 150.0) for i in range(300)])
    _add(db, [(NOW - 290 + i * 10, 200, 300.0 if i % 4 == 0 else 1500.0) for i in range(28)])
    report = compute_slo(db, SLO, now=NOW)
    latency = _latency(report)
    assert report.slow == 21 and report.served == 328 and report.failures == 0
    assert latency.short_burn == pytest.approx(21 / 28 / 0.05)  # 15x the allowed 5%
    assert latency.long_burn == pytest.approx(21 / 328 / 0.05)
    assert latency.short_burn > 10 and latency.long_burn < 10 and not latency.firing
    # Still slow, and long enough for the hour to burn too: the latency alert fires.
    _add(db, [(NOW - 250 + i / 2, 200, 2500.0) for i in range(400)])
    report = compute_slo(db, SLO, now=NOW)
    latency, availability = _latency(report), _availability(report)
    assert latency.long_burn == pytest.approx(421 / 728 / 0.05) and latency.long_burn > 10
    assert latency.short_burn > 10 and latency.firing
    assert availability.long_burn == 0 and availability.short_burn == 0 and not availability.firing
    assert report.availability == 1.0 and report.error_budget_remaining == 1.0
    assert report.latency_budget_remaining == pytest.approx(1 - 421 / (0.05 * 728), abs=1e-3)
    assert [a.key for a in report.firing] == ["latency:60/5"]
    assert report.to_dict()["alerts"][1] == {**latency.to_dict(), "slo": "latency", "firing": True}
    assert not report.latency_ok


def test_fast_traffic_does_not_burn_the_latency_budget(db: Database) -> None:
    _add(db, [(NOW - 3000 + i * 10, 200, 200.0 + i) for i in range(300)])
    report = compute_slo(db, SLO, now=NOW)
    latency = _latency(report)
    assert report.slow == 0 and latency.long_burn == 0 and latency.short_burn == 0 and not latency.firing
    assert report.latency_budget_remaining == 1.0 and report.latency_ok


def test_requests_exactly_at_the_target_are_not_slow(db: Database) -> None:
    _add(db, [(NOW - 10 - i, 200, 1000.0) for i in range(20)])
    assert compute_slo(db, SLO, now=NOW).slow == 0


def test_client_errors_and_hang_ups_do_not_count_for_latency(db: Database) -> None:
    # Slow refusals of bad requests and slow hang-ups: neither served nor Keel's failure.
    _add(db, [(NOW - 10 - i, 400 + i % 30, 5000.0) for i in range(30)])
    _add(db, [(NOW - 50 - i, 499, 9000.0) for i in range(30)])
    _add(db, [(NOW - 90 - i, 200, 100.0) for i in range(10)])
    report = compute_slo(db, SLO, now=NOW)
    assert report.served == 10 and report.slow == 0 and report.requests == 40
    assert not any(a.firing for a in report.alerts)
    assert _latency(report).short_burn == 0 and report.p95_latency_ms == 100.0


def test_failed_requests_spend_availability_not_latency(db: Database) -> None:
    _add(db, [(NOW - 10 - i, 504, 30_000.0) for i in range(20)])
    report = compute_slo(db, SLO, now=NOW)
    assert _availability(report).firing and not _latency(report).firing
    assert report.served == 0 and report.latency_budget_remaining is None and report.p95_latency_ms is None


def test_hourly_series_and_sparkline_draw_the_last_day(db: Database) -> None:
    _add(db, [(NOW - 3600 * 2 + 10, 200, 100.0), (NOW - 3600 * 2 + 20, 500, 5.0), (NOW - 30, 200, 300.0)])
    series = hourly_series(db, hours=3, now=NOW)
    assert [s["requests"] for s in series] == [0.0, 2.0, 1.0]
    assert series[1]["failure_rate"] == 0.5 and series[0]["p95_ms"] is None
    line = sparkline([s["p95_ms"] for s in series])
    assert len(line) == 3 and line[0] == " " and line[2] == "█"
    assert "slow_rate" not in series[0]
    slow = hourly_series(db, hours=3, now=NOW, p95_target_ms=200)
    assert [s["slow_rate"] for s in slow] == [None, 0.0, 1.0]


def test_firing_alerts_reach_the_webhook(db: Database) -> None:
    _add(db, [(NOW - 10 - i, 500, 5.0) for i in range(20)])
    report = compute_slo(db, SLO, now=NOW)
    with webhook_receiver() as url:
        assert notify(report, webhook=url, service="keel-test") == []
    assert len(WebhookHandler.received) == 1
    payload = WebhookHandler.received[0]
    assert payload["alert"] == "slo_burn_rate" and payload["firing"] and payload["service"] == "keel-test"
    assert payload["slo"] == "availability" and "availability error budget" in payload["message"]


def test_a_latency_alert_says_the_latency_budget_burns(db: Database) -> None:
    _add(db, [(NOW - 10 - i, 200, 4000.0) for i in range(20)])
    with webhook_receiver() as url:
        report = compute_slo(db, SLO, now=NOW)
        assert notify(report, webhook=url, service="keel-test", only={"availability:60/5"}) == []
        assert WebhookHandler.received == []  # not the alert asked for
        assert notify(report, webhook=url, service="keel-test") == []
    [payload] = WebhookHandler.received
    assert payload["slo"] == "latency" and payload["firing"] and payload["long_burn"] == 20.0
    assert "latency budget (requests slower than 1,000 ms) burning 20.0x" in payload["message"]


def test_an_unreachable_webhook_is_reported_not_raised(db: Database) -> None:
    _add(db, [(NOW - 10 - i, 500, 5.0) for i in range(20)])
    report = compute_slo(db, SLO, now=NOW)
    problems = notify(report, webhook="http://127.0.0.1:9/hook", service="keel-test", timeout_s=1.0)
    assert problems and "unreachable" in problems[0]


def test_keel_slo_prints_json_and_exits_1_while_an_alert_fires(tmp_path: Path) -> None:
    import time

    from click.testing import CliRunner

    from keel.cli.main import main

    (tmp_path / "docs").mkdir()
    (tmp_path / "keel.yaml").write_text("slo: {availability: 0.99}\n", encoding="utf-8")
    database = database_at(tmp_path / ".keel" / "keel.db")
    now = time.time()
    _add(database, [(now - 5 - i, 200, 20.0) for i in range(5)])
    database.close()
    quiet = CliRunner().invoke(main, ["--project", str(tmp_path), "slo", "--json"])
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.output)["availability"] == 1.0
    database = database_at(tmp_path / ".keel" / "keel.db")
    _add(database, [(now - 1 - i / 10, 503, 5.0) for i in range(40)])
    database.close()
    firing = CliRunner().invoke(main, ["--project", str(tmp_path), "slo", "--json"])
    assert firing.exit_code == 1
    assert any(a["firing"] for a in json.loads(firing.output)["alerts"])


def test_keel_slo_reports_the_latency_burn_and_exits_1_while_it_fires(tmp_path: Path) -> None:
    import time

    from click.testing import CliRunner

    from keel.cli.main import main

    (tmp_path / "docs").mkdir()
    (tmp_path / "keel.yaml").write_text(
        "slo: {p95_latency_ms: 200, burn_rate_alerts: [{long_minutes: 60, short_minutes: 5, threshold: 2}]}\n",
        encoding="utf-8",
    )
    database = database_at(tmp_path / ".keel" / "keel.db")
    now = time.time()
    _add(database, [(now - 30 - i, 200, 50.0) for i in range(20)])
    database.close()
    quiet = CliRunner().invoke(main, ["--project", str(tmp_path), "slo", "--json"])
    assert quiet.exit_code == 0, quiet.output
    body = json.loads(quiet.output)
    assert body["latency_budget_remaining"] == 1.0 and body["slow"] == 0
    assert [(a["slo"], a["firing"]) for a in body["alerts"]] == [("availability", False), ("latency", False)]
    assert body["last_24h"][-1]["slow_rate"] == 0.0
    database = database_at(tmp_path / ".keel" / "keel.db")
    _add(database, [(now - 1 - i / 10, 200, 400.0) for i in range(20)])
    database.close()
    firing = CliRunner().invoke(main, ["--project", str(tmp_path), "slo", "--json"])
    assert firing.exit_code == 1, firing.output
    body = json.loads(firing.output)
    latency = next(a for a in body["alerts"] if a["slo"] == "latency")
    assert latency["firing"] and latency["short_burn"] == pytest.approx(10.0)
    assert body["latency_budget_remaining"] == pytest.approx(1 - 20 / (0.05 * 40))
    assert not next(a for a in body["alerts"] if a["slo"] == "availability")["firing"]
    table = CliRunner().invoke(main, ["--project", str(tmp_path), "slo"])
    assert table.exit_code == 1
    assert "latency budget left" in table.output and "slow share" in table.output and "FIRING" in table.output
