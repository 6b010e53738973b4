"""Budget reservations in Redis, shared by every replica.

Per budget period key (``app:default:2026-12-02``) Redis holds three keys: the
spend settled in the period (``:spent``, a mirror of the ledger), the reservations
in flight (``:res``, a hash of token to amount) and their expiry times (``:exp``,
a sorted set). One Lua script purges expired reservations, checks
``spent + reserved + amount <= usd`` for every budget of the request and reserves
under all of them, atomically; a second one removes a reservation and adds what the
call cost to ``:spent`` in the same step. Since a reservation turns into spend
without a moment where neither is counted, replicas never admit more, together,
than a budget holds (as long as a call costs no more than its worst-case
reservation).

Spend is mirrored rather than read from the ledger alone because the ledger is
written after the reservation is released: read by another replica in between, it
would miss that call. The ledger stays the record: the mirror is seeded from the
ledger's spend when the period's key is missing, and raised to it when the ledger
shows more (spend made while Redis was away). A reservation expires after
``ttl_s``, so the reservations of a replica that died are given back; ``ttl_s``
must exceed the longest model call. Time is the Redis server's (``TIME``).

When Redis cannot be reached the state falls back to in-process reservations (as
with ``cost.shared_state: memory``), logs it once, and never raises. Keys of one
request differ, so Redis Cluster is not supported.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from keel.routing.budget_state import BudgetCheck, MemoryBudgetState
from keel.store.redis_scripts import RedisScripts

__all__ = ["RedisBudgetState"]

log = logging.getLogger(__name__)

_RESERVE = """
-- KEYS: per budget, its :spent, :res and :exp keys. ARGV: token, ttl ms, amount,
-- then per budget: limit, the ledger's spend, how long to keep :spent (ms).
-- Returns {1, 0} when reserved, else {0, the index of the first budget that would break}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, ttl, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 3
for i = 1, n do
  local spent_k, res_k, exp_k = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local limit, ledger = tonumber(ARGV[1 + 3 * i]), tonumber(ARGV[2 + 3 * i])
  local expired = redis.call('ZRANGEBYSCORE', exp_k, '-inf', now)
  if #expired > 0 then
    redis.call('HDEL', res_k, unpack(expired))
    redis.call('ZREMRANGEBYSCORE', exp_k, '-inf', now)
  end
  local spent = tonumber(redis.call('GET', spent_k) or '-1')
  if spent < ledger then
    redis.call('SET', spent_k, string.format('%.17g', ledger), 'PX', ARGV[3 + 3 * i])
    spent = ledger
  end
  local reserved = 0
  for _, v in ipairs(redis.call('HVALS', res_k)) do
    reserved = reserved + tonumber(v)
  end
  if spent + reserved + amount > limit + 1e-12 then
    return {0, i}
  end
end
for i = 1, n do
  local res_k, exp_k = KEYS[3 * i - 1], KEYS[3 * i]
  redis.call('HSET', res_k, token, string.format('%.17g', amount))
  redis.call('ZADD', exp_k, now + ttl, token)
  redis.call('PEXPIRE', res_k, ttl + 1000)
  redis.call('PEXPIRE', exp_k, ttl + 1000)
end
return {1, 0}
"""

_SETTLE = """
-- KEYS: per budget, its :spent, :res and :exp keys. ARGV: token, the call's cost.
-- A missing :spent is left missing: the next reservation seeds it from the ledger.
local token, cost = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS / 3 do
  local spent_k, res_k, exp_k = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  redis.call('HDEL', res_k, token)
  redis.call('ZREM', exp_k, token)
  if cost > 0 and redis.call('EXISTS', spent_k) == 1 then
    redis.call('INCRBYFLOAT', spent_k, string.format('%.17g', cost))
  end
end
return 1
"""

_RESERVED = """
-- KEYS: :res and :exp of one budget. Returns the sum of the live reservations.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
local total = 0
for _, token in ipairs(live) do
  total = total + tonumber(redis.call('HGET', KEYS[1], token) or '0')
end
return string.format('%.17g', total)
"""


_SCRIPTS = {"reserve": _RESERVE, "settle": _SETTLE, "reserved": _RESERVED}
_LOCAL = "local:"


class RedisBudgetState:
    """Budget reservations in Redis, shared by every replica with the same ``url`` and ``prefix``."""

    def __init__(self, *, url: str, prefix: str = "keel:budget:", ttl_s: float = 300.0, timeout_s: float = 0.5) -> None:
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._fallback = MemoryBudgetState()
        self._redis = RedisScripts(
            url, _SCRIPTS, what="budgets", fallback="reservations are kept per replica", timeout_s=timeout_s
        )

    def _keys(self, key: str) -> list[str]:
        base = self._prefix + key
        return [base + ":spent", base + ":res", base + ":exp"]

    def reserve(self, checks: Sequence[BudgetCheck], amount: float) -> str | None:
        """Check and reserve in one script; in process while Redis is away."""
        token = uuid.uuid4().hex
        keys: list[str] = []
        args: list[str | float] = [token, self._ttl_ms, repr(amount)]
        for check in checks:
            keys += self._keys(check.key)
            args += [repr(check.limit_usd), repr(check.ledger_spent_usd), int((check.period_s + 86_400) * 1000)]
        reply = self._run("reserve", keys, args)
        if reply is None:
            return self._fallback.reserve(checks, amount)
        return token if int(reply[0]) == 1 else None

    def settle(self, keys: Sequence[str], token: str, amount: float, spent_usd: float) -> None:
        """Remove the reservation and add the call's cost to the period's spend, in one step."""
        if token.startswith(_LOCAL):
            self._fallback.settle(keys, token, amount, spent_usd)
            return
        redis_keys = [k for key in keys for k in self._keys(key)]
        self._run("settle", redis_keys, [token, repr(max(0.0, spent_usd))])

    def reserved(self, key: str) -> float:
        """The live reservations of every replica under ``key`` (plus this process's, while Redis is away)."""
        _, res, exp = self._keys(key)
        reply = self._run("reserved", [res, exp], [])
        shared = 0.0 if reply is None else float(reply)
        return shared + self._fallback.reserved(key)

    def close(self) -> None:
        """Close the connections to Redis."""
        self._redis.close()

    def _run(self, name: str, keys: Sequence[str], args: Sequence[str | float]) -> Any:
        return self._redis.run(name, keys, args)
