"""Budgets enforced before a model call.

A call may go ahead when, for every budget that covers the request's app or tenant,
what the period has spent, plus what calls in flight have reserved, plus this
call's worst-case estimate stays within the budget. The reservation is released
when the call ends, and the actual cost is what the ledger records.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from keel.contract import Budget
from keel.ops.costs import CostLedger, period_key

__all__ = ["BudgetGuard", "BudgetStatus", "Reservation"]


@dataclass(frozen=True, kw_only=True)
class BudgetStatus:
    """One budget's state."""

    budget: Budget
    spent_usd: float
    reserved_usd: float

    @property
    def label(self) -> str:
        """``app:default:day``."""
        return f"{self.budget.scope}:{self.budget.name}:{self.budget.period}"

    @property
    def remaining_usd(self) -> float:
        """What is left (never below zero)."""
        return max(0.0, self.budget.usd - self.spent_usd - self.reserved_usd)


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """Money set aside for one call in flight."""

    keys: tuple[str, ...]
    amount: float


class BudgetGuard:
    """Budgets of the contract, over the cost ledger."""

    def __init__(self, budgets: list[Budget], ledger: CostLedger) -> None:
        self._budgets = budgets
        self._ledger = ledger
        self._reserved: dict[str, float] = {}
        self._lock = threading.Lock()

    def _applicable(self, app: str, tenant: str) -> list[Budget]:
        return [
            b
            for b in self._budgets
            if (b.scope == "app" and b.name == app) or (b.scope == "tenant" and b.name == tenant)
        ]

    @staticmethod
    def _key(budget: Budget, when: float) -> str:
        return f"{budget.scope}:{budget.name}:{period_key(budget.period, when)}"

    def status(self, *, app: str, tenant: str, when: float | None = None) -> list[BudgetStatus]:
        """Every budget covering the app or tenant, with spend and reservations."""
        return [self.status_of(b, when) for b in self._applicable(app, tenant)]

    def all_status(self, when: float | None = None) -> list[BudgetStatus]:
        """Every budget of the contract."""
        return [self.status_of(b, when) for b in self._budgets]

    def status_of(self, budget: Budget, when: float | None = None) -> BudgetStatus:
        """One budget's spend and reservations in the period containing ``when`` (default: now)."""
        moment = time.time() if when is None else when
        spent = self._ledger.spent(scope=budget.scope, name=budget.name, period=budget.period, when=moment)
        with self._lock:
            reserved = self._reserved.get(self._key(budget, moment), 0.0)
        return BudgetStatus(budget=budget, spent_usd=spent, reserved_usd=reserved)

    def blocking(self, *, app: str, tenant: str, estimate: float) -> str | None:
        """The label of the first budget ``estimate`` would break, or ``None``."""
        if estimate <= 0:
            return None
        for state in self.status(app=app, tenant=tenant):
            if estimate > state.remaining_usd:
                return state.label
        return None

    def reserve(self, *, app: str, tenant: str, amount: float) -> Reservation | None:
        """Set ``amount`` aside; ``None`` (nothing reserved) if a budget would be broken."""
        moment = time.time()
        budgets = self._applicable(app, tenant)
        if not budgets or amount <= 0:
            return Reservation(keys=(), amount=0.0)
        spent = {
            self._key(b, moment): self._ledger.spent(scope=b.scope, name=b.name, period=b.period, when=moment)
            for b in budgets
        }
        with self._lock:
            for budget in budgets:
                key = self._key(budget, moment)
                if spent[key] + self._reserved.get(key, 0.0) + amount > budget.usd:
                    return None
            for budget in budgets:
                key = self._key(budget, moment)
                self._reserved[key] = self._reserved.get(key, 0.0) + amount
        return Reservation(keys=tuple(self._key(b, moment) for b in budgets), amount=amount)

    def release(self, reservation: Reservation) -> None:
        """Return a reservation (the actual cost is in the ledger by then)."""
        with self._lock:
            for key in reservation.keys:
                left = self._reserved.get(key, 0.0) - reservation.amount
                if left <= 1e-12:
                    self._reserved.pop(key, None)
                else:
                    self._reserved[key] = left
