"""Budgets enforced before a model call.

A call may go ahead when, for every budget that covers the request's app or tenant,
what the period has spent, plus what calls in flight have reserved, plus this
call's worst-case estimate stays within the budget. The reservation is settled
when the call ends, and the actual cost is what the ledger records.

Reservations live in a :class:`~keel.routing.budget_state.BudgetState`: in process
by default, or in Redis (``cost.shared_state: redis``) so that replicas see each
other's calls in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from keel.contract import Budget, CostSettings
from keel.errors import ConfigError
from keel.ops.costs import CostLedger, period_key
from keel.routing.budget_state import BudgetCheck, BudgetState, MemoryBudgetState

__all__ = ["BudgetGuard", "BudgetStatus", "Reservation", "budget_state"]


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
    token: str = ""


_PERIOD_S = {"day": 86_400.0, "month": 31 * 86_400.0}


def budget_state(settings: CostSettings, *, redis_url: str | None) -> BudgetState:
    """The reservation state ``cost.shared_state`` asks for (:class:`~keel.errors.ConfigError` without a Redis URL)."""
    if settings.shared_state == "memory":
        return MemoryBudgetState()
    if not redis_url:
        raise ConfigError("cost.shared_state is 'redis' but no Redis URL is set (KEEL_REDIS_URL)")
    from keel.routing.budget_redis import RedisBudgetState

    return RedisBudgetState(url=redis_url, ttl_s=settings.reservation_ttl_s)


class BudgetGuard:
    """Budgets of the contract, over the cost ledger."""

    def __init__(self, budgets: list[Budget], ledger: CostLedger, *, state: BudgetState | None = None) -> None:
        self._budgets = budgets
        self._ledger = ledger
        self._state: BudgetState = state if state is not None else MemoryBudgetState()

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
        reserved = self._state.reserved(self._key(budget, moment))
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
        checks = [
            BudgetCheck(
                key=self._key(b, moment),
                limit_usd=b.usd,
                ledger_spent_usd=self._ledger.spent(scope=b.scope, name=b.name, period=b.period, when=moment),
                period_s=_PERIOD_S[b.period],
            )
            for b in budgets
        ]
        token = self._state.reserve(checks, amount)
        if token is None:
            return None
        return Reservation(keys=tuple(c.key for c in checks), amount=amount, token=token)

    def settle(self, reservation: Reservation, *, spent_usd: float) -> None:
        """End a reservation with what the call cost (which the ledger records as well)."""
        if reservation.keys:
            self._state.settle(reservation.keys, reservation.token, reservation.amount, spent_usd)

    def release(self, reservation: Reservation) -> None:
        """End a reservation whose call cost nothing."""
        self.settle(reservation, spent_usd=0.0)

    def close(self) -> None:
        """Release the state's connections."""
        self._state.close()
