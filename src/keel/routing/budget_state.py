"""Where budget reservations live: in process (one replica) or shared by replicas.

:class:`~keel.routing.budgets.BudgetGuard` asks a :class:`BudgetState` to check
and reserve an amount against several budgets at once, all or nothing, and later
to settle the reservation with what the call actually cost. The in-process
:class:`MemoryBudgetState` is the default; :class:`~keel.routing.budget_redis.RedisBudgetState`
shares reservations (and the spend settled through it) between replicas.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BudgetCheck", "BudgetState", "MemoryBudgetState"]


@dataclass(frozen=True, kw_only=True)
class BudgetCheck:
    """One budget a reservation must fit: its period key, its limit and the ledger's spend so far."""

    key: str
    limit_usd: float
    ledger_spent_usd: float
    period_s: float


class BudgetState(Protocol):
    """Reservations in flight, per budget period key."""

    def reserve(self, checks: Sequence[BudgetCheck], amount: float) -> str | None:
        """Reserve ``amount`` under every check's key if each still fits; a token, or ``None``."""
        ...

    def settle(self, keys: Sequence[str], token: str, amount: float, spent_usd: float) -> None:
        """End a reservation; ``spent_usd`` is what the call cost (already or soon in the ledger)."""
        ...

    def reserved(self, key: str) -> float:
        """What calls in flight have reserved under ``key``."""
        ...

    def close(self) -> None:
        """Release connections, if any."""
        ...


class MemoryBudgetState:
    """Reservations of this process only; spend is read from the ledger alone."""

    def __init__(self) -> None:
        self._reserved: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def reserve(self, checks: Sequence[BudgetCheck], amount: float) -> str | None:
        """Check and reserve under one lock."""
        with self._lock:
            for check in checks:
                if check.ledger_spent_usd + self._reserved.get(check.key, 0.0) + amount > check.limit_usd:
                    return None
            for check in checks:
                self._reserved[check.key] = self._reserved.get(check.key, 0.0) + amount
            return f"local:{next(self._ids)}"

    def settle(self, keys: Sequence[str], token: str, amount: float, spent_usd: float) -> None:
        """Return the reservation (the spend is counted by the ledger)."""
        with self._lock:
            for key in keys:
                left = self._reserved.get(key, 0.0) - amount
                if left <= 1e-12:
                    self._reserved.pop(key, None)
                else:
                    self._reserved[key] = left

    def reserved(self, key: str) -> float:
        """What this process has reserved under ``key``."""
        with self._lock:
            return self._reserved.get(key, 0.0)

    def close(self) -> None:
        """Nothing to release."""
