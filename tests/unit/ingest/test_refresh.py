"""Refreshing due sources: only those, audited once per change of state, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from keel.audit import AuditLog
from keel.contract import parse_contract
from keel.ingest.ingestor import Ingestor
from keel.ingest.refresh import SourceRefresher
from keel.policy.pii import redact
from keel.retrieval.versions import IndexStore
from tests.support.database import database_at
from tests.support.unreadable import make_unreadable, restore

CONTRACT = parse_contract(
    """
sources:
  - {name: hr, path: hr, owner: people@example.com, groups: [hr], refresh: 1h}
  - {name: open, path: open, owner: comms@example.com, groups: [everyone], refresh: 1d}
"""
)
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, root: Path, embedder: Any) -> None:
        self.docs = root / "docs"
        for rel, text in (
            ("hr/bands.md", "# Salary bands\n\nSenior engineers earn EUR 78,000 to 96,000.\n"),
            ("open/leave.md", "# Leave\n\nStaff get 27 days of annual leave every year.\n"),
        ):
            (self.docs / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.docs / rel).write_text(text, encoding="utf-8")
        self.clock = Clock()
        self.db = database_at(root / "keel.db")
        self.audit = AuditLog(self.db, redact=redact)
        self.ingestor = Ingestor(
            contract=CONTRACT,
            docs_dir=self.docs,
            db=self.db,
            index_store=IndexStore(root / "index"),
            embedder=embedder,
            clock=self.clock,
        )
        self.refresher = SourceRefresher(
            CONTRACT, ingestor=self.ingestor, db=self.db, audit=self.audit, clock=self.clock
        )

    def events(self) -> list[tuple[str, str]]:
        return [(r.action, r.subject) for r in self.audit.records(action="source")]


@pytest.fixture
def setup(tmp_path: Path, embedder: Any) -> Any:
    s = Setup(tmp_path, embedder)
    s.ingestor.run()
    yield s
    s.audit.close()
    s.db.close()


def test_nothing_is_ingested_while_every_source_is_fresh(setup: Setup) -> None:
    result = setup.refresher.refresh()
    assert result is not None and result.due == [] and result.report is None
    assert setup.events() == []


def test_only_the_source_past_its_interval_is_refreshed_and_audited(setup: Setup) -> None:
    setup.clock.now += 2 * HOUR
    (setup.docs / "hr" / "bands.md").write_text("# Salary bands\n\nSenior engineers earn EUR 80,000.\n")
    (setup.docs / "open" / "leave.md").write_text("# Leave\n\nStaff get 30 days of annual leave every year.\n")
    result = setup.refresher.refresh()
    assert result is not None and result.report is not None
    assert [f.source for f in result.due] == ["hr"] and result.refreshed == ["hr"] and result.failed == []
    assert result.report.updated == ["hr/bands.md"] and result.report.version == 2
    [record] = list(setup.audit.records(action="source.refreshed"))
    assert record.subject == "hr" and record.data["documents"] == 1
    assert record.data["updated"] == 1 and record.data["index_version"] == 2
    assert [f.state for f in setup.refresher.freshness()] == ["fresh", "fresh"]


def test_a_failing_source_is_audited_once_retried_and_its_recovery_audited(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.clock.now += 2 * HOUR
    make_unreadable(setup.docs / "hr")
    try:
        first = setup.refresher.refresh()
        setup.clock.now += 60
        again = setup.refresher.refresh()
    finally:
        restore(setup.docs / "hr")
    assert first is not None and first.failed == ["hr"]
    assert again is not None and [f.source for f in again.due] == ["hr"] and again.failed == ["hr"]
    assert setup.events() == [("source.failed", "hr")]
    [failed] = list(setup.audit.records(action="source.failed"))
    assert failed.data["documents_kept"] == 1
    assert "docs/hr" in failed.data["error"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "owner: people@example.com" in warnings[0]
    states = {f.source: f.state for f in setup.refresher.freshness()}
    assert states == {"hr": "failing", "open": "fresh"}

    setup.clock.now += 60
    recovered = setup.refresher.refresh()
    assert recovered is not None and recovered.refreshed == ["hr"]
    assert setup.events() == [("source.failed", "hr"), ("source.refreshed", "hr")]
    assert next(iter(setup.audit.records(action="source.refreshed"))).data["recovered"] is True


def test_one_refresh_runs_at_a_time(setup: Setup) -> None:
    setup.clock.now += 2 * HOUR
    with setup.refresher._lock:
        assert setup.refresher.refresh() is None


def test_the_refresh_loop_runs_off_the_event_loop_and_survives_failures(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []

    def refresh() -> None:
        threads.append(threading.get_ident())
        raise RuntimeError("boom")

    monkeypatch.setattr(setup.refresher, "refresh", refresh)

    async def main() -> int:
        task = asyncio.create_task(setup.refresher.run(0.01))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert len(threads) >= 2 and loop_thread not in threads
