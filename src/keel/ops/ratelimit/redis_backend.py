"""Rate limiting in Redis: token buckets shared by every replica.

One Lua script reads, refills, checks and charges all of a request's buckets in
one atomic step, so concurrent replicas never admit more than a bucket holds and
a refused request charges nothing. The script reads the time from the Redis
server (``TIME``), not from the replicas, so replicas whose clocks disagree still
agree on every bucket. Each bucket is a hash (level, time) that expires once it
would have refilled completely, since a missing bucket counts as full.

When Redis cannot be reached the limiter fails open (``on_error="allow"``) or
closed (``"deny"``) and marks the decision ``degraded``; it never raises.
Buckets of one request live under different keys, so Redis Cluster is not
supported (a single server, or one behind Sentinel, is).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from keel.contract.models import RateLimit
from keel.ops.ratelimit.buckets import EPSILON, Bucket, LimitDecision, Subject, buckets_for, decide

__all__ = ["RedisRateLimiter"]

log = logging.getLogger(__name__)

_SCRIPT = """
-- KEYS: the buckets. ARGV[1]: 'acquire' or 'charge'. ARGV[2]: the time in ms, or ''
-- for the server's TIME. Then, per bucket: capacity, units needed, units charged.
-- Returns {1 if admitted (always for 'charge') else 0, each level before the charge}.
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
else
  now = tonumber(ARGV[2])
end
local acquire = ARGV[1] == 'acquire'
local n = #KEYS
local levels, caps, costs, stamps = {}, {}, {}, {}
local ok = 1
for i = 1, n do
  local base = 2 + (i - 1) * 3
  local cap = tonumber(ARGV[base + 1])
  local need = tonumber(ARGV[base + 2])
  local level, at = cap, now
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  if state[1] and state[2] then
    level = tonumber(state[1])
    at = tonumber(state[2])
    if now > at then
      level = level + (now - at) * cap / 60000
      at = now
    end
    if level > cap then
      level = cap
    end
  end
  levels[i], caps[i], costs[i], stamps[i] = level, cap, tonumber(ARGV[base + 3]), at
  if acquire and level + __EPSILON__ < need then
    ok = 0
  end
end
if ok == 1 then
  for i = 1, n do
    local level = levels[i] - costs[i]
    if level > caps[i] then
      level = caps[i]
    end
    redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', string.format('%.17g', stamps[i]))
    local refill_ms = math.ceil((caps[i] - level) * 60000 / caps[i])
    redis.call('PEXPIRE', KEYS[i], string.format('%d', refill_ms + 1000))
  end
end
local out = {ok}
for i = 1, n do
  out[i + 1] = string.format('%.17g', levels[i])
end
return out
""".replace("__EPSILON__", repr(EPSILON))

_SHA = hashlib.sha1(_SCRIPT.encode("utf-8"), usedforsecurity=False).hexdigest()


class RedisRateLimiter:
    """Token buckets in Redis, shared by every replica that uses the same ``url`` and ``prefix``.

    ``clock`` (seconds) replaces the server's time; it is meant for tests, since
    replicas with their own clocks would disagree. ``timeout_s`` bounds each call
    to Redis, connecting included.
    """

    def __init__(
        self,
        limits: Sequence[RateLimit],
        *,
        url: str,
        prefix: str = "keel:rl:",
        clock: Callable[[], float] | None = None,
        on_error: Literal["allow", "deny"] = "allow",
        timeout_s: float = 0.5,
    ) -> None:
        self._limits = list(limits)
        self._prefix = prefix
        self._clock = clock
        self._on_error = on_error
        self._failing = False
        # One immediate retry covers a pooled connection that Redis closed (a restart);
        # a timeout is not retried, since the script may have run and charged.
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )

    def acquire(self, subject: Subject, *, tokens: int = 0) -> LimitDecision:
        """Admit one request and ``tokens`` estimated model tokens, or refuse it (charging nothing)."""
        buckets = buckets_for(self._limits, subject)
        if not buckets:
            return LimitDecision.unlimited()
        args: list[float] = []
        for b in buckets:
            args += [b.capacity, b.need(tokens), b.cost(tokens)]
        result = self._run("acquire", buckets, args)
        if result is None:
            return LimitDecision.unavailable(allowed=self._on_error == "allow")
        allowed, levels = result
        return decide(buckets, levels, tokens=tokens, allowed=allowed)

    def charge_tokens(self, subject: Subject, tokens: int) -> None:
        """Charge tokens beyond the estimate to the subject's token buckets (may go into debt)."""
        if tokens == 0:
            return
        buckets = [b for b in buckets_for(self._limits, subject) if b.kind == "tokens"]
        if not buckets:
            return
        args: list[float] = []
        for b in buckets:
            args += [b.capacity, 0, tokens]
        self._run("charge", buckets, args)

    def close(self) -> None:
        """Close the connections to Redis."""
        self._client.close()

    def _run(self, mode: str, buckets: Sequence[Bucket], args: Sequence[float]) -> tuple[bool, list[float]] | None:
        keys = [self._prefix + b.key for b in buckets]
        now = "" if self._clock is None else repr(self._clock() * 1000.0)
        keys_and_args: list[str | float] = [*keys, mode, now, *args]
        try:
            try:
                reply: Any = self._client.evalsha(_SHA, len(keys), *keys_and_args)
            except NoScriptError:
                self._client.script_load(_SCRIPT)
                reply = self._client.evalsha(_SHA, len(keys), *keys_and_args)
        except (RedisError, OSError) as error:
            if not self._failing:
                self._failing = True
                log.warning("rate limits: Redis is unavailable (%s); requests are %s", error, self._on_error_text)
            return None
        if self._failing:
            self._failing = False
            log.info("rate limits: Redis is available again")
        return int(reply[0]) == 1, [float(level) for level in reply[1:]]

    @property
    def _on_error_text(self) -> str:
        return "allowed" if self._on_error == "allow" else "refused"
