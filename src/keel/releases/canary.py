"""Canary guard: roll a canary back automatically when it serves worse than the current release.

While an app has a canary, every ``rollout.canary.check_interval_s`` the guard compares
the candidate's requests in the last ``window_minutes`` with the app's other requests
in the same window (those served by the current release): error rate (5xx), p95
latency, cost per request and guard-block rate (refused requests). With at least
``min_requests`` on the candidate, any breach of the contract's limits ends the canary
(``release.canary_rollback`` in the audit log, with the figures and what breached);
all live traffic is back on the current release within the registry's state TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.contract import CanaryPolicy
from keel.releases.registry import ReleaseRegistry, ReleaseState
from keel.store import Database
from keel.store.json_sql import json_number

__all__ = ["CanaryGuard", "CanaryVerdict", "SideStats", "judge_canary"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SideStats:
    """One side of the comparison over the window."""

    requests: int
    error_rate: float
    p95_ms: float | None
    cost_per_request: float
    guard_block_rate: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True, kw_only=True)
class CanaryVerdict:
    """The candidate against the current release, and what breached."""

    app: str
    candidate: str
    candidate_stats: SideStats
    current_stats: SideStats
    breaches: list[str] = field(default_factory=list)
    enough_traffic: bool = False

    @property
    def roll_back(self) -> bool:
        """Whether the canary must end."""
        return self.enough_traffic and bool(self.breaches)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "app": self.app,
            "candidate": self.candidate,
            "candidate_stats": self.candidate_stats.to_dict(),
            "current_stats": self.current_stats.to_dict(),
            "breaches": self.breaches,
            "enough_traffic": self.enough_traffic,
            "roll_back": self.roll_back,
        }


def _side(rows: list[Any]) -> SideStats:
    n = len(rows)
    if n == 0:
        return SideStats(requests=0, error_rate=0.0, p95_ms=None, cost_per_request=0.0, guard_block_rate=0.0)
    served = [r["latency_ms"] for r in rows if r["status"] < 500]
    return SideStats(
        requests=n,
        error_rate=sum(1 for r in rows if r["status"] >= 500) / n,
        p95_ms=float(np.percentile(served, 95)) if served else None,
        cost_per_request=sum(float(r["cost"] or 0.0) for r in rows) / n,
        guard_block_rate=sum(1 for r in rows if r["mode"] == "refused") / n,
    )


def judge_canary(
    db: Database, state: ReleaseState, policy: CanaryPolicy, *, now: float | None = None
) -> CanaryVerdict | None:
    """The verdict on ``state``'s canary over the window, or ``None`` when the app runs no canary."""
    if state.stage != "canary" or state.candidate is None:
        return None
    now = time.time() if now is None else now
    since = max(now - policy.window_minutes * 60, state.started_at or 0.0)
    rows = (
        db.connection()
        .execute(
            f"SELECT release, status, latency_ms, mode, {json_number(db.dialect, 'data_json', 'response.cost_usd')}"
            " AS cost FROM traces WHERE app = ? AND created_at >= ? AND status != 499",
            (state.app, since),
        )
        .fetchall()
    )
    candidate = _side([r for r in rows if r["release"] == state.candidate])
    current = _side([r for r in rows if r["release"] != state.candidate])
    breaches = []
    if candidate.error_rate > current.error_rate + policy.max_error_rate_increase:
        breaches.append(f"error rate {candidate.error_rate:.1%} vs {current.error_rate:.1%}")
    if candidate.p95_ms is not None and current.p95_ms and candidate.p95_ms > current.p95_ms * policy.max_p95_ratio:
        breaches.append(f"p95 latency {candidate.p95_ms:.0f} ms vs {current.p95_ms:.0f} ms")
    if current.cost_per_request > 0 and candidate.cost_per_request > current.cost_per_request * policy.max_cost_ratio:
        breaches.append(f"cost per request ${candidate.cost_per_request:.6f} vs ${current.cost_per_request:.6f}")
    elif current.cost_per_request == 0 and candidate.cost_per_request > 0 and current.requests:
        breaches.append(f"cost per request ${candidate.cost_per_request:.6f} vs $0")
    if candidate.guard_block_rate > current.guard_block_rate + policy.max_guard_block_rate_increase:
        breaches.append(f"guard-block rate {candidate.guard_block_rate:.1%} vs {current.guard_block_rate:.1%}")
    return CanaryVerdict(
        app=state.app,
        candidate=state.candidate,
        candidate_stats=candidate,
        current_stats=current,
        breaches=breaches,
        enough_traffic=candidate.requests >= policy.min_requests,
    )


class CanaryGuard:
    """Checks every running canary and rolls back the ones that breach the contract."""

    def __init__(
        self,
        registry: ReleaseRegistry,
        policy: CanaryPolicy,
        *,
        db: Database,
        flush: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._policy = policy
        self._db = db
        self._flush = flush
        self._clock = clock

    def check(self) -> list[CanaryVerdict]:
        """One check of every app; returns the verdicts of apps running a canary."""
        self._flush()  # judge on every request recorded so far
        verdicts = []
        for state in self._registry.states():
            verdict = judge_canary(self._db, state, self._policy, now=self._clock())
            if verdict is None:
                continue
            verdicts.append(verdict)
            if verdict.roll_back:
                log.warning(
                    "canary %s of app %s rolled back: %s", verdict.candidate, state.app, "; ".join(verdict.breaches)
                )
                self._registry.stop(
                    state.app,
                    actor="canary-guard",
                    reason="; ".join(verdict.breaches),
                    action="release.canary_rollback",
                    details={"verdict": verdict.to_dict()},
                )
        return verdicts

    async def run(self) -> None:
        """Check forever, every ``check_interval_s`` (cancel to stop)."""
        while True:
            await asyncio.sleep(self._policy.check_interval_s)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # the guard must keep running
                log.exception("canary check failed")
