"""Budgets: spend from the ledger plus reservations in flight; a request is charged once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keel.contract import Budget
from keel.ops.costs import CostLedger, period_key
from keel.routing.budgets import BudgetGuard
from tests.support.database import database_at


@pytest.fixture
def ledger(tmp_path: Path) -> CostLedger:
    return CostLedger(database_at(tmp_path / "k.db"))


def record(ledger: CostLedger, rid: str, cost: float, *, app: str = "default", tenant: str = "t") -> None:
    ledger.record(
        request_id=rid,
        when=time.time(),
        tenant=tenant,
        app=app,
        model="m",
        prompt_tokens=10,
        completion_tokens=5,
        cost_usd=cost,
    )


def test_the_same_request_is_never_charged_twice(ledger: CostLedger) -> None:
    record(ledger, "r1", 0.5)
    record(ledger, "r1", 0.7)
    assert ledger.spent(scope="app", name="default", period="day", when=time.time()) == pytest.approx(0.7)
    assert len(ledger.report()) == 1 and ledger.report()[0].requests == 1


def test_reservations_count_until_released(ledger: CostLedger) -> None:
    guard = BudgetGuard([Budget(scope="app", name="default", period="day", usd=1.0)], ledger)
    first = guard.reserve(app="default", tenant="t", amount=0.6)
    assert first is not None
    assert guard.reserve(app="default", tenant="t", amount=0.6) is None
    assert guard.blocking(app="default", tenant="t", estimate=0.6) == "app:default:day"
    guard.release(first)
    assert guard.reserve(app="default", tenant="t", amount=0.6) is not None


def test_spend_in_the_ledger_counts_against_every_matching_budget(ledger: CostLedger) -> None:
    guard = BudgetGuard(
        [
            Budget(scope="app", name="default", period="day", usd=10),
            Budget(scope="tenant", name="t", period="month", usd=1),
        ],
        ledger,
    )
    record(ledger, "r1", 0.9, app="other")
    assert guard.blocking(app="default", tenant="t", estimate=0.2) == "tenant:t:month"
    assert guard.blocking(app="default", tenant="x", estimate=0.2) is None


def test_free_calls_are_never_blocked(ledger: CostLedger) -> None:
    guard = BudgetGuard([Budget(scope="app", name="default", period="day", usd=0)], ledger)
    assert guard.blocking(app="default", tenant="t", estimate=0.0) is None
    assert guard.reserve(app="default", tenant="t", amount=0.0) is not None


def test_periods_are_utc_days_and_months() -> None:
    assert period_key("day", 0) == "1970-01-01" and period_key("month", 0) == "1970-01"
