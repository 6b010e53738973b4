"""A circuit breaker whose state lives in Redis, shared by every replica.

The same state machine as :class:`~keel.models.breaker.CircuitBreaker`, kept in
three keys per model: the failures in the window (``:f``, a sorted set by time),
when the breaker opened (``:o``) and the probe slot (``:p``). Each transition is
one Lua script using the Redis server's clock, so a breaker opened by one replica
is open for all of them on their next call (every check reads Redis), and after the
cool-down exactly one probe is admitted across replicas: the slot is taken with
``SET NX`` and expires after ``probe_ttl_s``, so a replica that dies mid-probe
does not keep the breaker half-open forever.

When Redis cannot be reached the breaker falls back to an in-process one (the
replica protects itself alone), logs it once, and never raises.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from keel.contract import BreakerSettings
from keel.models.breaker import BreakerState, CircuitBreaker
from keel.store.redis_scripts import RedisScripts

__all__ = ["RedisCircuitBreaker"]

log = logging.getLogger(__name__)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_SCRIPTS_SRC = {
    # KEYS: :o. ARGV: cooldown ms. Returns {state, ms until a probe}.
    "state": _NOW
    + """
local opened = redis.call('GET', KEYS[1])
if not opened then return {'closed', 0} end
local left = tonumber(opened) + tonumber(ARGV[1]) - now
if left > 0 then return {'open', left} end
return {'half_open', 0}
""",
    # KEYS: :o, :p. ARGV: cooldown ms, probe token, probe ttl ms. Returns 1 (go), 2 (go, as the probe) or 0.
    "acquire": _NOW
    + """
local opened = redis.call('GET', KEYS[1])
if not opened then return 1 end
if now - tonumber(opened) < tonumber(ARGV[1]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 2 end
return 0
""",
    # KEYS: :o, :p, :f. ARGV: failures, window ms, keep ms, a unique member.
    "failure": _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[1], string.format('%d', now), 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('ZADD', KEYS[3], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[3], ARGV[2])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], string.format('%d', now), 'PX', ARGV[3])
  redis.call('DEL', KEYS[3])
  return 1
end
return 0
""",
    # KEYS: :o, :p, :f.
    "success": "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) return 1",
    # KEYS: :p. ARGV: the probe token. Frees the slot only if this replica holds it.
    "release": "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
}
_KEEP_MS = 86_400_000


class RedisCircuitBreaker:
    """The circuit breaker of one model, shared by every replica with the same ``url``, ``prefix`` and ``name``."""

    def __init__(
        self,
        settings: BreakerSettings,
        *,
        name: str,
        url: str,
        prefix: str = "keel:breaker:",
        probe_ttl_s: float = 120.0,
        timeout_s: float = 0.5,
    ) -> None:
        self._settings = settings
        base = f"{prefix}{name}"
        self._opened, self._probe, self._failures = f"{base}:o", f"{base}:p", f"{base}:f"
        self._probe_ttl_ms = max(1, int(probe_ttl_s * 1000))
        self._token: str | None = None
        self._local = CircuitBreaker(settings)
        self._redis = RedisScripts(
            url,
            _SCRIPTS_SRC,
            what="circuit breakers",
            fallback="each replica keeps its own",
            timeout_s=timeout_s,
        )

    @property
    def _cooldown_ms(self) -> int:
        return int(self._settings.cooldown_s * 1000)

    def _read(self) -> tuple[BreakerState, float] | None:
        reply = self._run("state", [self._opened], [self._cooldown_ms])
        if reply is None:
            return None
        raw = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        state: BreakerState = "open" if raw == "open" else "half_open" if raw == "half_open" else "closed"
        return state, float(reply[1]) / 1000.0

    @property
    def state(self) -> BreakerState:
        """The state every replica sees."""
        read = self._read()
        return self._local.state if read is None else read[0]

    def seconds_until_probe(self) -> float:
        """How long until a probe is allowed (0 when closed or half-open)."""
        read = self._read()
        return self._local.seconds_until_probe() if read is None else read[1]

    def acquire(self) -> bool:
        """Whether a call may go through now; when half-open, only the one replica that takes the probe slot."""
        token = uuid.uuid4().hex
        reply = self._run("acquire", [self._opened, self._probe], [self._cooldown_ms, token, self._probe_ttl_ms])
        if reply is None:
            return self._local.acquire()
        if int(reply) == 2:
            self._token = token
        return int(reply) != 0

    def record_success(self) -> None:
        """Close the breaker for every replica."""
        self._token = None
        if self._run("success", [self._opened, self._probe, self._failures], []) is None:
            self._local.record_success()

    def record_failure(self) -> None:
        """Count a failure; open the breaker at the threshold, or again after a failed probe."""
        self._token = None
        keys = [self._opened, self._probe, self._failures]
        args: list[str | int] = [
            self._settings.failures,
            int(self._settings.window_s * 1000),
            self._cooldown_ms + _KEEP_MS,
            uuid.uuid4().hex,
        ]
        if self._run("failure", keys, args) is None:
            self._local.record_failure()

    def release_probe(self) -> None:
        """Free the probe slot if this replica holds it."""
        token, self._token = self._token, None
        if token is not None:
            self._run("release", [self._probe], [token])
        self._local.release_probe()

    def close(self) -> None:
        """Close the connections to Redis."""
        self._redis.close()

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._redis.run(name, keys, args)
