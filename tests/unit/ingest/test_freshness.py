"""Source freshness: fresh, stale, failing or never, from the recorded ingests and a fixed clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.contract import parse_contract
from keel.ingest.freshness import FreshnessStore, SourceOutcome, SourceRecord, assess, source_freshness, summary
from tests.support.database import database_at

CONTRACT = parse_contract(
    """
sources:
  - {name: hr, path: hr, owner: people@example.com, refresh: 6h}
  - {name: wiki, path: wiki, owner: docs@example.com, refresh: 1d}
  - {name: legal, path: legal, refresh: 15m}
"""
)
NOW = 1_800_000_000.0
HOUR = 3600.0


def record(source: str, *, attempt: float, ok: bool, success: float | None, error: str | None = None) -> SourceRecord:
    return SourceRecord(
        source=source,
        last_attempt_at=attempt,
        last_attempt_ok=ok,
        last_success_at=success,
        documents=3,
        passages=9,
        last_error=error,
        last_error_at=attempt if error else None,
    )


def test_a_source_is_fresh_within_its_interval_and_stale_after_it() -> None:
    records = {
        "hr": record("hr", attempt=NOW - 5 * HOUR, ok=True, success=NOW - 5 * HOUR),
        "wiki": record("wiki", attempt=NOW - 25 * HOUR, ok=True, success=NOW - 25 * HOUR),
    }
    hr, wiki, legal = assess(CONTRACT, records, now=NOW)
    assert (hr.state, hr.stale, hr.due, hr.age_s) == ("fresh", False, False, 5 * HOUR)
    assert (wiki.state, wiki.stale, wiki.due) == ("stale", True, True)
    assert (legal.state, legal.stale, legal.failing, legal.due) == ("never", True, False, True)
    assert legal.last_success_at is None and legal.age_s is None and legal.documents == 0
    assert hr.owner == "people@example.com" and hr.refresh == "6h" and hr.documents == 3


def test_exactly_at_its_interval_a_source_is_still_fresh() -> None:
    records = {"hr": record("hr", attempt=NOW - 6 * HOUR, ok=True, success=NOW - 6 * HOUR)}
    assert assess(CONTRACT, records, now=NOW)[0].state == "fresh"


def test_a_failed_last_attempt_makes_a_source_failing_even_when_its_last_success_is_recent() -> None:
    records = {
        "hr": record("hr", attempt=NOW - 60, ok=False, success=NOW - HOUR, error="cannot read docs/hr"),
        "wiki": record("wiki", attempt=NOW, ok=False, success=None, error="folder docs/wiki does not exist"),
    }
    hr, wiki, _ = assess(CONTRACT, records, now=NOW)
    assert (hr.state, hr.failing, hr.stale, hr.due) == ("failing", True, False, True)
    assert hr.last_error == "cannot read docs/hr"
    assert (wiki.state, wiki.failing, wiki.stale) == ("failing", True, True)


def test_sources_the_contract_no_longer_declares_are_not_reported() -> None:
    records = {"old": record("old", attempt=NOW, ok=True, success=NOW)}
    assert [f.source for f in assess(CONTRACT, records, now=NOW)] == ["hr", "wiki", "legal"]


def test_the_store_keeps_the_last_success_and_error_across_attempts(tmp_path: Path) -> None:
    db = database_at(tmp_path / "keel.db")
    store = FreshnessStore(db)
    store.record([SourceOutcome(source="hr", ok=True, documents=4, passages=12)], at=NOW - 2 * HOUR)
    store.record([SourceOutcome(source="hr", ok=False, error="cannot read docs/hr: denied")], at=NOW - HOUR)
    failed = store.records()["hr"]
    assert (failed.last_attempt_at, failed.last_attempt_ok, failed.last_success_at) == (
        NOW - HOUR,
        False,
        NOW - 2 * HOUR,
    )
    assert (failed.documents, failed.passages) == (4, 12)
    assert (failed.last_error, failed.last_error_at) == ("cannot read docs/hr: denied", NOW - HOUR)
    store.record([SourceOutcome(source="hr", ok=True, documents=5, passages=13)], at=NOW)
    recovered = source_freshness(CONTRACT, db, now=NOW)[0]
    assert (recovered.state, recovered.last_success_at, recovered.documents) == ("fresh", NOW, 5)
    assert recovered.last_error == "cannot read docs/hr: denied" and recovered.last_error_at == NOW - HOUR
    db.close()


def test_a_long_error_is_recorded_cut(tmp_path: Path) -> None:
    db = database_at(tmp_path / "keel.db")
    FreshnessStore(db).record([SourceOutcome(source="hr", ok=False, error="x" * 5000)], at=NOW)
    error = FreshnessStore(db).records()["hr"].last_error
    assert error is not None and 0 < len(error) <= 500
    db.close()


@pytest.mark.parametrize(
    ("states", "line"),
    [
        ({"hr": "fresh", "wiki": "fresh", "legal": "fresh"}, "all fresh"),
        ({"hr": "fresh", "wiki": "stale", "legal": "failing"}, "failing: legal; stale: wiki; fresh: hr"),
    ],
)
def test_the_readiness_summary_names_sources_by_state_without_counts(states: dict[str, str], line: str) -> None:
    records = {}
    for name, state in states.items():
        if state == "fresh":
            records[name] = record(name, attempt=NOW, ok=True, success=NOW)
        elif state == "stale":
            records[name] = record(name, attempt=NOW - 30 * HOUR, ok=True, success=NOW - 30 * HOUR)
        else:
            records[name] = record(name, attempt=NOW, ok=False, success=None, error="boom")
    text = summary(assess(CONTRACT, records, now=NOW))
    assert text == line
    assert not any(ch.isdigit() for ch in text)
