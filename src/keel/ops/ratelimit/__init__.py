"""Rate limits: token buckets per API key, app and tenant, for requests and model tokens.

Each :class:`~keel.contract.RateLimit` of the contract gives buckets that hold its
per-minute figures and refill continuously. A request takes one unit from every
request bucket and its token estimate from every token bucket it counts against,
all or nothing (:meth:`RateLimiter.acquire`); after the model call the tokens used
beyond the estimate are charged (:meth:`RateLimiter.charge_tokens`), so a subject
that used more waits longer. Limiters return a :class:`LimitDecision` (with the
response headers) rather than raising.

Two backends: :class:`MemoryRateLimiter` counts in process (one replica) and
:class:`RedisRateLimiter` in Redis (shared by replicas).
"""

from __future__ import annotations

from keel.contract.models import RateLimitSettings
from keel.errors import ConfigError
from keel.ops.ratelimit.buckets import LimitDecision, RateLimiter, Subject
from keel.ops.ratelimit.memory import MemoryRateLimiter
from keel.ops.ratelimit.redis_backend import RedisRateLimiter

__all__ = [
    "LimitDecision",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "Subject",
    "build_rate_limiter",
]


def build_rate_limiter(settings: RateLimitSettings, *, redis_url: str | None) -> RateLimiter | None:
    """The limiter the contract's ``rate_limits`` asks for; ``None`` when it sets no limit.

    Raises :class:`~keel.errors.ConfigError` when the backend is Redis and no URL is given.
    """
    if not settings.limits:
        return None
    if settings.backend == "memory":
        return MemoryRateLimiter(settings.limits)
    if not redis_url:
        raise ConfigError("rate_limits.backend is 'redis' but no Redis URL is set (KEEL_REDIS_URL)")
    return RedisRateLimiter(settings.limits, url=redis_url)
