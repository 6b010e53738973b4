"""The cost ledger's write-behind path: queued spend counts at once, is written once, survives close."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from keel.ops.costs import CostLedger
from tests.support.database import database_at


def submit(ledger: CostLedger, rid: str, cost: float, *, tenant: str = "acme", when: float | None = None) -> None:
    ledger.submit(
        request_id=rid,
        when=time.time() if when is None else when,
        tenant=tenant,
        app="gateway",
        model="m",
        prompt_tokens=100,
        completion_tokens=20,
        cost_usd=cost,
    )


def spent_today(ledger: CostLedger, *, scope: str = "tenant", name: str = "acme") -> float:
    return ledger.spent(scope=scope, name=name, period="day", when=time.time())  # type: ignore[arg-type]


def test_queued_spend_counts_for_budgets_before_the_writer_commits_it(tmp_path: Path) -> None:
    ledger = CostLedger(database_at(tmp_path / "k.db"))
    release = threading.Event()
    commit = ledger._commit

    def slow_commit(entries: list[object]) -> None:
        release.wait(10)
        commit(entries)  # type: ignore[arg-type]

    ledger._commit = slow_commit  # type: ignore[method-assign]
    ledger._writer._commit = slow_commit  # the writer thread holds the bound method it was given
    submit(ledger, "r1", 0.25)
    submit(ledger, "r2", 0.5, tenant="other")
    assert spent_today(ledger) == pytest.approx(0.25)
    assert spent_today(ledger, scope="app", name="gateway") == pytest.approx(0.75)
    assert ledger.spent(scope="tenant", name="acme", period="day", when=time.time() - 3 * 86400) == 0
    release.set()
    ledger.flush()
    assert spent_today(ledger) == pytest.approx(0.25)  # now from the database, not counted twice
    ledger.close()


def test_a_request_resubmitted_with_running_totals_is_charged_once(tmp_path: Path) -> None:
    ledger = CostLedger(database_at(tmp_path / "k.db"))
    submit(ledger, "r1", 0.1)
    submit(ledger, "r1", 0.3)  # after its second model call
    ledger.flush()
    assert spent_today(ledger) == pytest.approx(0.3)
    report = ledger.report()
    assert len(report) == 1 and report[0].requests == 1 and report[0].cost_usd == pytest.approx(0.3)
    ledger.close()


def test_close_commits_everything_queued(tmp_path: Path) -> None:
    ledger = CostLedger(database_at(tmp_path / "k.db"))
    for i in range(500):
        submit(ledger, f"r{i}", 0.001)
    ledger.close()
    reopened = CostLedger(database_at(tmp_path / "k.db"))
    assert spent_today(reopened) == pytest.approx(0.5)
    assert reopened.report()[0].requests == 500
    reopened.close()
