"""Rate limiting in process: token buckets in a dictionary behind a lock.

For a single replica. Every replica counts on its own, so with N replicas a
subject gets up to N times its limits; use the Redis backend to share them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keel.contract.models import RateLimit
from keel.ops.ratelimit.buckets import Bucket, LimitDecision, Subject, admits, buckets_for, decide

__all__ = ["MemoryRateLimiter"]

_SWEEP_EVERY_S = 60.0
"""How often buckets that have refilled completely are forgotten (they equal absent ones)."""


@dataclass(kw_only=True)
class _State:
    level: float
    at: float
    capacity: int


class MemoryRateLimiter:
    """Token buckets held in this process; thread-safe.

    ``clock`` is a monotonic clock in seconds, injectable for tests.
    """

    def __init__(self, limits: Sequence[RateLimit], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = list(limits)
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._last_sweep = clock()

    def acquire(self, subject: Subject, *, tokens: int = 0) -> LimitDecision:
        """Admit one request and ``tokens`` estimated model tokens, or refuse it (charging nothing)."""
        buckets = buckets_for(self._limits, subject)
        if not buckets:
            return LimitDecision.unlimited()
        with self._lock:
            now = self._clock()
            levels = [self._level(b, now) for b in buckets]
            allowed = all(admits(b, level, tokens) for b, level in zip(buckets, levels, strict=True))
            if allowed:
                for b, level in zip(buckets, levels, strict=True):
                    self._store(b, level - b.cost(tokens), now)
            self._maybe_sweep(now)
        return decide(buckets, levels, tokens=tokens, allowed=allowed)

    def charge_tokens(self, subject: Subject, tokens: int) -> None:
        """Charge tokens beyond the estimate to the subject's token buckets (may go into debt)."""
        if tokens == 0:
            return
        buckets = [b for b in buckets_for(self._limits, subject) if b.kind == "tokens"]
        if not buckets:
            return
        with self._lock:
            now = self._clock()
            for b in buckets:
                self._store(b, min(float(b.capacity), self._level(b, now) - tokens), now)

    def close(self) -> None:
        """Forget every bucket."""
        with self._lock:
            self._states.clear()

    def _level(self, bucket: Bucket, now: float) -> float:
        state = self._states.get(bucket.key)
        if state is None:
            return float(bucket.capacity)
        return bucket.refill(state.level, now - state.at)

    def _store(self, bucket: Bucket, level: float, now: float) -> None:
        self._states[bucket.key] = _State(level=level, at=now, capacity=bucket.capacity)

    def _maybe_sweep(self, now: float) -> None:
        if now - self._last_sweep < _SWEEP_EVERY_S:
            return
        self._last_sweep = now
        full = [key for key, s in self._states.items() if s.level + (now - s.at) * s.capacity / 60.0 >= s.capacity]
        for key in full:
            del self._states[key]
