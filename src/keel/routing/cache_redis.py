"""Answer caches in Redis, shared by every replica (``routing.cache.shared_state: redis``).

The same semantics as the in-process cache of :mod:`keel.routing.cache`. Each scope
(app, prompt, index version, permission fingerprint) has its own four keys, named
by a digest of the scope, so a lookup reads only its own scope's entries:

* ``:e``, a hash of question digest to the entry (JSON);
* ``:v``, a hash of question digest to the question's unit embedding (float32 bytes);
* ``:t``, a sorted set of question digest by when it was stored (for the TTL);
* ``:u``, a sorted set of question digest by when it was last served (least recently
  used go first when the scope holds more than ``max_entries``).

Each step is one Lua script on the Redis server's clock: an exact lookup reads one
field; a semantic lookup purges the scope's expired entries and reads its vectors
(at most ``max_entries``), then the cosine similarities are computed here with
numpy and the best one above the threshold is read; a store purges, writes, trims
the scope to ``max_entries`` and sets every key of the scope to expire after
``ttl_s``, so an idle scope leaves nothing behind. A new index version, another
group or tenant is another scope, so nothing crosses permissions or outlives the
documents an answer was built on.

When Redis cannot be reached every operation raises :class:`SharedCacheUnavailable`,
which :class:`~keel.routing.cache.AnswerCache` turns into a miss (and a store into
nothing). Keys of one scope differ, so Redis Cluster is not supported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis.exceptions import RedisError

from keel.contract import CacheSettings
from keel.routing.cache import CacheEntry, CacheHit, CacheScope, SharedCacheUnavailable
from keel.store.redis_scripts import RedisScripts

__all__ = ["RedisAnswerStore"]

_PRELUDE = """
-- KEYS: the scope's :e, :v, :t and :u keys. ARGV[1]: the TTL in ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local function drop(field)
  redis.call('HDEL', KEYS[1], field)
  redis.call('HDEL', KEYS[2], field)
  redis.call('ZREM', KEYS[3], field)
  redis.call('ZREM', KEYS[4], field)
end
local function purge()
  for _, field in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', string.format('(%d', now - ttl))) do
    drop(field)
  end
end
"""

_SCRIPTS = {
    # ARGV[2]: the question digest. Returns {} or {entry}, and marks the entry used.
    "get": _PRELUDE
    + """
local stored = redis.call('ZSCORE', KEYS[3], ARGV[2])
if not stored or tonumber(stored) < now - ttl then return {} end
local entry = redis.call('HGET', KEYS[1], ARGV[2])
if not entry then return {} end
redis.call('ZADD', KEYS[4], now, ARGV[2])
return {entry}
""",
    # Returns the live vectors of the scope as {digest, bytes, digest, bytes, ...}.
    "candidates": _PRELUDE
    + """
purge()
return redis.call('HGETALL', KEYS[2])
""",
    # ARGV[2]: digest, ARGV[3]: entry, ARGV[4]: vector bytes or '', ARGV[5]: entries kept per scope.
    "put": _PRELUDE
    + """
purge()
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[4]) else redis.call('HDEL', KEYS[2], ARGV[2]) end
redis.call('ZADD', KEYS[3], now, ARGV[2])
redis.call('ZADD', KEYS[4], now, ARGV[2])
local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[5])
if extra > 0 then
  for _, field in ipairs(redis.call('ZRANGE', KEYS[4], 0, extra - 1)) do
    drop(field)
  end
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
return 1
""",
}


class RedisAnswerStore:
    """Exact and semantic answers in Redis, shared by every replica with the same ``url`` and ``prefix``."""

    def __init__(
        self, settings: CacheSettings, *, url: str, prefix: str = "keel:cache:", timeout_s: float = 0.5
    ) -> None:
        self._settings = settings
        self._prefix = prefix
        self._ttl_ms = max(1, int(settings.ttl_s * 1000))
        self._redis = RedisScripts(
            url, _SCRIPTS, what="answer cache", fallback="lookups are misses and nothing is stored", timeout_s=timeout_s
        )

    def _keys(self, scope: CacheScope) -> list[str]:
        ident = json.dumps([scope.app, scope.prompt, scope.index_version, scope.fingerprint])
        base = f"{self._prefix}v{scope.index_version}:{_digest(ident)}"
        return [base + ":e", base + ":v", base + ":t", base + ":u"]

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        reply = self._redis.run(name, keys, args)
        if reply is None:
            raise SharedCacheUnavailable(name)
        return reply

    def lookup(self, scope: CacheScope, question: str, vector: NDArray[np.float32] | None) -> CacheHit | None:
        """The entry for the normalised ``question`` in ``scope``: exact first, then the most similar."""
        keys = self._keys(scope)
        if self._settings.exact:
            found = self._run("get", keys, [self._ttl_ms, _digest(question)])
            if found:
                return CacheHit(kind="exact", entry=_decode(found[0]), similarity=1.0)
        if not self._settings.semantic or vector is None:
            return None
        reply = self._run("candidates", keys, [self._ttl_ms])
        query = _unit(vector)
        size = query.shape[0] * 4
        pairs = [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2) if len(reply[i + 1]) == size]
        if not pairs:
            return None
        matrix = np.frombuffer(b"".join(blob for _, blob in pairs), dtype=np.float32).reshape(len(pairs), -1)
        similarities = matrix @ query
        best = int(np.argmax(similarities))
        similarity = float(similarities[best])
        if similarity < self._settings.semantic_threshold:
            return None
        found = self._run("get", keys, [self._ttl_ms, pairs[best][0]])
        if not found:
            return None  # expired or evicted in between
        return CacheHit(kind="semantic", entry=_decode(found[0]), similarity=similarity)

    def store(self, scope: CacheScope, question: str, vector: NDArray[np.float32] | None, entry: CacheEntry) -> None:
        """Remember ``entry`` for the normalised ``question`` in ``scope`` (with its vector for semantic lookups)."""
        blob = _unit(vector).tobytes() if self._settings.semantic and vector is not None else b""
        if not blob and not self._settings.exact:
            return  # nothing could find it
        args = [self._ttl_ms, _digest(question), _encode(entry), blob, self._settings.max_entries]
        self._run("put", self._keys(scope), args)

    def clear(self) -> None:
        """Forget every scope under this prefix."""
        try:
            for batch in _batches(self._redis.client.scan_iter(match=self._prefix + "*", count=500), 500):
                self._redis.client.unlink(*batch)
        except (RedisError, OSError) as error:
            raise SharedCacheUnavailable("clear") from error

    def __len__(self) -> int:
        try:
            client = self._redis.client
            return sum(int(client.hlen(key)) for key in client.scan_iter(match=self._prefix + "*:e", count=500))
        except (RedisError, OSError) as error:
            raise SharedCacheUnavailable("len") from error

    def close(self) -> None:
        """Close the connections to Redis."""
        self._redis.close()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    flat = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(flat))
    return flat / norm if norm > 0 else flat


def _encode(entry: CacheEntry) -> str:
    return json.dumps(
        {
            "answer": entry.answer,
            "citations": [list(c) for c in entry.citations],
            "model": entry.model,
            "strategy": entry.strategy,
            "prompt": entry.prompt,
        },
        separators=(",", ":"),
    )


def _decode(raw: bytes) -> CacheEntry:
    data = json.loads(raw)
    return CacheEntry(
        answer=data["answer"],
        citations=tuple((int(n), str(chunk)) for n, chunk in data["citations"]),
        model=data["model"],
        strategy=data["strategy"],
        prompt=data["prompt"],
    )


def _batches(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
