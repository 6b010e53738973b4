"""Answer caches scoped by permission.

An entry is found only within its scope: the app, the prompt version, the index
version and the caller's permission fingerprint (tenant and groups). The exact
cache matches the normalised question; the semantic cache matches a question whose
embedding is at least a threshold similar. An entry records the passages it cites
and is served only if the caller may read every one of them (checked by the caller
of :meth:`AnswerCache.lookup`). A new index version starts a new scope, so entries
built on changed or deleted documents are never served. Entries expire after a TTL
and the least recently used go first when the cache is full.

With ``routing.cache.shared_state: redis`` the entries live in Redis, shared by every
replica (:mod:`keel.routing.cache_redis`), with the same scopes and semantics; while
Redis cannot be reached a lookup is a miss and a store does nothing, each failure is
reported to :attr:`AnswerCache.on_error` (a metric), and the request is served anyway.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from keel.contract import CacheSettings
from keel.errors import ConfigError

K = TypeVar("K")
V = TypeVar("V")

__all__ = [
    "AnswerCache",
    "CacheEntry",
    "CacheHit",
    "CacheScope",
    "SharedAnswers",
    "SharedCacheUnavailable",
    "answer_cache",
    "normalise_question",
    "permission_fingerprint",
]

log = logging.getLogger(__name__)


def normalise_question(question: str) -> str:
    """Case, width, spacing and trailing punctuation do not make a different question."""
    text = unicodedata.normalize("NFKC", question).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" ?!.")


def permission_fingerprint(tenant: str, groups: frozenset[str]) -> str:
    """Identifies what a caller may read: their tenant and their groups."""
    return hashlib.sha256(f"{tenant}\x00{chr(0).join(sorted(groups))}".encode()).hexdigest()[:24]


@dataclass(frozen=True, kw_only=True)
class CacheScope:
    """Entries are shared only within one scope."""

    app: str
    prompt: str
    index_version: int
    fingerprint: str


@dataclass(frozen=True, kw_only=True)
class CacheEntry:
    """A served answer that can be served again."""

    answer: str
    citations: tuple[tuple[int, str], ...]
    """``(number, chunk id)`` pairs; the caller rebuilds the citations from the index."""
    model: str | None
    strategy: str
    prompt: str | None


@dataclass(frozen=True, kw_only=True)
class CacheHit:
    """A lookup result."""

    kind: Literal["exact", "semantic"]
    entry: CacheEntry
    similarity: float


class SharedCacheUnavailable(Exception):
    """The shared store could not be reached; :class:`AnswerCache` treats the operation as a miss."""


class SharedAnswers(Protocol):
    """Entries kept outside the process; questions arrive normalised. Raises ``SharedCacheUnavailable``."""

    def lookup(self, scope: CacheScope, question: str, vector: NDArray[np.float32] | None) -> CacheHit | None: ...

    def store(
        self, scope: CacheScope, question: str, vector: NDArray[np.float32] | None, entry: CacheEntry
    ) -> None: ...

    def clear(self) -> None: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def answer_cache(settings: CacheSettings, *, redis_url: str | None, namespace: str = "") -> AnswerCache:
    """The cache ``routing.cache.shared_state`` asks for (:class:`~keel.errors.ConfigError` without a Redis URL).

    ``namespace`` (the contract's name) keeps deployments sharing one Redis apart; characters other than
    letters, digits, ``_``, ``.`` and ``-`` become ``_``, so no namespace's key pattern matches another's.
    """
    if settings.shared_state == "memory":
        return AnswerCache(settings)
    if not redis_url:
        raise ConfigError("routing.cache.shared_state is 'redis' but no Redis URL is set (KEEL_REDIS_URL)")
    from keel.routing.cache_redis import RedisAnswerStore

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", namespace)
    prefix = f"keel:cache:{safe}:" if safe else "keel:cache:"
    return AnswerCache(settings, shared=RedisAnswerStore(settings, url=redis_url, prefix=prefix))


class AnswerCache:
    """Exact and semantic answer caches, in process or (``shared``) in a store shared by replicas."""

    on_error: Callable[[str], None] | None = None
    """Called with the operation (``lookup``, ``store``, ``clear``) when the shared store could not be reached."""

    def __init__(
        self,
        settings: CacheSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedAnswers | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._shared = shared
        self._lock = threading.Lock()
        self._exact: OrderedDict[tuple[CacheScope, str], tuple[float, CacheEntry]] = OrderedDict()
        self._semantic: OrderedDict[tuple[CacheScope, str], tuple[float, NDArray[np.float32], CacheEntry]] = (
            OrderedDict()
        )

    def lookup(self, scope: CacheScope, question: str, vector: NDArray[np.float32] | None) -> CacheHit | None:
        """The entry for ``question`` in ``scope``: exact first, then the most similar above the threshold."""
        if self._shared is not None:
            try:
                return self._shared.lookup(scope, normalise_question(question), vector)
            except SharedCacheUnavailable as error:
                self._failed("lookup", error)
                return None
        key = (scope, normalise_question(question))
        now = self._clock()
        with self._lock:
            if self._settings.exact:
                found = self._exact.get(key)
                if found is not None and now - found[0] <= self._settings.ttl_s:
                    self._exact.move_to_end(key)
                    return CacheHit(kind="exact", entry=found[1], similarity=1.0)
            if not self._settings.semantic or vector is None:
                return None
            best: tuple[float, tuple[CacheScope, str]] | None = None
            for other, (stored_at, stored_vector, _) in self._semantic.items():
                if other[0] != scope or now - stored_at > self._settings.ttl_s:
                    continue
                similarity = float(stored_vector @ vector)
                if similarity >= self._settings.semantic_threshold and (best is None or similarity > best[0]):
                    best = (similarity, other)
            if best is None:
                return None
            self._semantic.move_to_end(best[1])
            return CacheHit(kind="semantic", entry=self._semantic[best[1]][2], similarity=best[0])

    def store(self, scope: CacheScope, question: str, vector: NDArray[np.float32] | None, entry: CacheEntry) -> None:
        """Remember ``entry`` for ``question`` in ``scope``."""
        if self._shared is not None:
            if self._settings.exact or self._settings.semantic:
                try:
                    self._shared.store(scope, normalise_question(question), vector, entry)
                except SharedCacheUnavailable as error:
                    self._failed("store", error)
            return
        key = (scope, normalise_question(question))
        now = self._clock()
        with self._lock:
            if self._settings.exact:
                self._exact[key] = (now, entry)
                self._exact.move_to_end(key)
                _trim(self._exact, self._settings.max_entries)
            if self._settings.semantic and vector is not None:
                self._semantic[key] = (now, vector.astype(np.float32), entry)
                self._semantic.move_to_end(key)
                _trim(self._semantic, self._settings.max_entries)

    def clear(self) -> None:
        """Forget everything (in the shared store: every replica's entries)."""
        if self._shared is not None:
            try:
                self._shared.clear()
            except SharedCacheUnavailable as error:
                self._failed("clear", error)
            return
        with self._lock:
            self._exact.clear()
            self._semantic.clear()

    def close(self) -> None:
        """Close the connections to the shared store, if any."""
        if self._shared is not None:
            self._shared.close()

    def _failed(self, operation: str, error: SharedCacheUnavailable) -> None:
        log.debug("answer cache: %s skipped, the shared store is unavailable (%s)", operation, error)
        if self.on_error is not None:
            self.on_error(operation)

    def __len__(self) -> int:
        if self._shared is not None:
            return len(self._shared)
        with self._lock:
            return len(self._exact) + len(self._semantic)


def _trim(store: OrderedDict[K, V], limit: int) -> None:
    while len(store) > limit:
        store.popitem(last=False)
