"""Token buckets: what a request counts against, and the decision it gets.

A :class:`~keel.contract.RateLimit` becomes up to two buckets per subject (one for
requests, one for model tokens). A bucket holds at most its per-minute figure and
refills continuously at a sixtieth of it per second. The backends only store bucket
levels; how levels turn into a :class:`LimitDecision` is decided here, once, so that
the in-process and the Redis backend answer alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from keel.contract.models import RateLimit

__all__ = ["EPSILON", "Bucket", "LimitDecision", "RateLimiter", "Subject", "admits", "buckets_for", "decide"]

EPSILON = 1e-9
"""Slack for float arithmetic: a level this close to what is needed counts as enough."""


@dataclass(frozen=True, kw_only=True)
class Subject:
    """Who a request counts against: its API key, its app and its tenant."""

    key_id: str
    app: str
    tenant: str

    def value(self, scope: Literal["key", "app", "tenant"]) -> str:
        """The subject's key id, app or tenant, by scope."""
        if scope == "key":
            return self.key_id
        return self.app if scope == "app" else self.tenant


@dataclass(frozen=True, kw_only=True)
class LimitDecision:
    """Whether a request may go ahead, and the state of the bucket that bound it.

    The bucket reported is the one that refused (the one whose wait is longest) or,
    when allowed, the one closest to empty. ``limit_name`` is empty when no limit
    applied. ``degraded`` means the backend could not be asked (Redis unreachable)
    and the decision follows its ``on_error`` setting.
    """

    allowed: bool
    limit_name: str
    limit: int
    remaining: int
    retry_after_s: float
    reset_s: float
    degraded: bool = False

    @classmethod
    def unlimited(cls) -> LimitDecision:
        """The decision for a request that no limit applies to."""
        return cls(allowed=True, limit_name="", limit=0, remaining=0, retry_after_s=0.0, reset_s=0.0)

    @classmethod
    def unavailable(cls, *, allowed: bool, retry_after_s: float = 1.0) -> LimitDecision:
        """The decision when the backend cannot be asked: fail open or fail closed."""
        return cls(
            allowed=allowed,
            limit_name="",
            limit=0,
            remaining=0,
            retry_after_s=0.0 if allowed else retry_after_s,
            reset_s=0.0,
            degraded=True,
        )

    def headers(self) -> dict[str, str]:
        """HTTP headers for the response: ``RateLimit-*``, ``X-RateLimit-*`` and ``Retry-After``.

        Values are whole seconds and units. Without a bucket (no limit applied, or a
        degraded decision) only ``Retry-After`` is given, and only when refused.
        """
        headers: dict[str, str] = {}
        if self.limit_name:
            headers |= {
                "RateLimit-Limit": str(self.limit),
                "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(_whole_seconds(self.reset_s)),
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.remaining),
            }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, _whole_seconds(self.retry_after_s)))
        return headers


def _whole_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds - EPSILON))


class RateLimiter(Protocol):
    """A rate limiter shared by every request of a process (or, with Redis, of every replica)."""

    def acquire(self, subject: Subject, *, tokens: int = 0) -> LimitDecision:
        """Admit one request and an estimate of its model tokens, or refuse it.

        All or nothing: when any matching bucket refuses, no bucket is charged.
        """
        ...

    def charge_tokens(self, subject: Subject, tokens: int) -> None:
        """Charge tokens used beyond the estimate (negative: return an over-estimate).

        Token buckets may go into debt, so that later requests wait; never raises.
        """
        ...

    def close(self) -> None:
        """Release the backend's resources."""
        ...


@dataclass(frozen=True, kw_only=True)
class Bucket:
    """One token bucket of one subject."""

    key: str
    """Where its level is stored: scope, ``*`` or ``=`` (wildcard or named limit), subject, kind."""
    name: str
    """How it is shown, e.g. ``tenant:acme:requests``."""
    kind: Literal["requests", "tokens"]
    capacity: int

    @property
    def rate(self) -> float:
        """Refill, in units per second."""
        return self.capacity / 60.0

    def need(self, tokens: int) -> float:
        """Units that must be in the bucket to admit a request with this token estimate.

        One for a request. For tokens, the estimate (at least one, at most the capacity,
        so that an estimate larger than the bucket still gets through a full bucket).
        """
        if self.kind == "requests":
            return 1.0
        return float(max(1, min(tokens, self.capacity)))

    def cost(self, tokens: int) -> float:
        """Units an admitted request with this token estimate takes."""
        return 1.0 if self.kind == "requests" else float(max(0, tokens))

    def refill(self, level: float, elapsed_s: float) -> float:
        """The level after ``elapsed_s`` seconds of refill (never above capacity)."""
        return min(float(self.capacity), level + max(0.0, elapsed_s) * self.rate)

    def seconds_until(self, level: float, target: float) -> float:
        """Seconds of refill until a bucket at ``level`` holds ``target`` units."""
        return max(0.0, (target - level) / self.rate)


def buckets_for(limits: Sequence[RateLimit], subject: Subject) -> list[Bucket]:
    """The buckets a subject's requests count against.

    A limit named ``*`` gives every key, app or tenant its own bucket; a named limit
    applies to that one only and takes the place of the ``*`` limit of its scope.
    Duplicate limits share a bucket at the smallest capacity.
    """
    named_scopes = {lim.scope for lim in limits if lim.name != "*" and lim.name == subject.value(lim.scope)}
    found: dict[str, Bucket] = {}
    for lim in limits:
        value = subject.value(lim.scope)
        if lim.name == "*":
            if lim.scope in named_scopes:
                continue
            marker = "*"
        elif lim.name == value:
            marker = "="
        else:
            continue
        figures: list[tuple[Literal["requests", "tokens"], int | None]] = [
            ("requests", lim.requests_per_minute),
            ("tokens", lim.tokens_per_minute),
        ]
        for kind, per_minute in figures:
            if per_minute is None:
                continue
            key = f"{lim.scope}:{marker}:{value}:{kind}"
            if key in found and found[key].capacity <= per_minute:
                continue
            found[key] = Bucket(key=key, name=f"{lim.scope}:{value}:{kind}", kind=kind, capacity=per_minute)
    return list(found.values())


def admits(bucket: Bucket, level: float, tokens: int) -> bool:
    """Whether a bucket at ``level`` admits a request with this token estimate."""
    return level + EPSILON >= bucket.need(tokens)


def decide(buckets: Sequence[Bucket], levels: Sequence[float], *, tokens: int, allowed: bool) -> LimitDecision:
    """The decision for a request, from its buckets' levels before it was charged.

    ``allowed`` is the backend's verdict (all buckets admit). A refusal reports the
    bucket with the longest wait; an admission the bucket closest to empty after
    the charge.
    """
    if not buckets:
        return LimitDecision.unlimited()
    if not allowed:
        waits = [b.seconds_until(level, b.need(tokens)) for b, level in zip(buckets, levels, strict=True)]
        i = max(range(len(buckets)), key=lambda j: waits[j])
        bucket, level = buckets[i], levels[i]
        return LimitDecision(
            allowed=False,
            limit_name=bucket.name,
            limit=bucket.capacity,
            remaining=_whole_units(level),
            retry_after_s=waits[i],
            reset_s=bucket.seconds_until(level, bucket.capacity),
        )
    after = [level - b.cost(tokens) for b, level in zip(buckets, levels, strict=True)]
    i = min(range(len(buckets)), key=lambda j: after[j] / buckets[j].capacity)
    bucket, level = buckets[i], after[i]
    return LimitDecision(
        allowed=True,
        limit_name=bucket.name,
        limit=bucket.capacity,
        remaining=_whole_units(level),
        retry_after_s=0.0,
        reset_s=bucket.seconds_until(level, bucket.capacity),
    )


def _whole_units(level: float) -> int:
    return max(0, math.floor(level + EPSILON))
