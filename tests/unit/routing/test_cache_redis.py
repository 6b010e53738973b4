"""Answer caches in a real Redis: shared by replicas, never across permission scopes, expiring, degrading to a miss."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from keel.contract import CacheSettings, Contract
from keel.errors import ConfigError
from keel.routing.cache import AnswerCache, CacheEntry, CacheScope, answer_cache, permission_fingerprint
from keel.routing.cache_redis import RedisAnswerStore
from tests.support.redis_server import RedisServer, own_redis_server, redis_server  # noqa: F401  (fixtures)

ENTRY = CacheEntry(answer="Band B [1]", citations=((1, "c_1"),), model="m", strategy="generated", prompt="answer@1")


def scope(groups: set[str], *, index: int = 1, app: str = "default", tenant: str = "t") -> CacheScope:
    return CacheScope(
        app=app, prompt="answer@1", index_version=index, fingerprint=permission_fingerprint(tenant, frozenset(groups))
    )


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


class Replicas:
    """Two caches, each with its own Redis client, on one Redis and one prefix."""

    def __init__(self, url: str, settings: CacheSettings, prefix: str | None = None) -> None:
        self.prefix = prefix or f"keel:test:{uuid.uuid4().hex[:12]}:"
        self.stores = [RedisAnswerStore(settings, url=url, prefix=self.prefix) for _ in range(2)]
        self.caches = [AnswerCache(settings, shared=s) for s in self.stores]
        self.errors: list[str] = []
        for cache in self.caches:
            cache.on_error = self.errors.append

    def close(self) -> None:
        for cache in self.caches:
            cache.close()


Make = Callable[..., Replicas]


@pytest.fixture
def make(redis_server: RedisServer) -> Iterator[Make]:  # noqa: F811
    made: list[Replicas] = []

    def build(settings: CacheSettings | None = None, prefix: str | None = None) -> Replicas:
        made.append(Replicas(redis_server.url, settings or CacheSettings(), prefix))
        return made[-1]

    yield build
    for replicas in made:
        replicas.close()


def test_an_answer_stored_by_one_replica_is_an_exact_hit_on_the_other(make: Make) -> None:
    a, b = make().caches
    a.store(scope({"hr"}), "What is the band?", unit(1, 0, 0), ENTRY)
    hit = b.lookup(scope({"hr"}), "  what IS the   band ", None)
    assert hit is not None and hit.kind == "exact" and hit.entry == ENTRY
    assert len(b) == 1


def test_semantic_hit_needs_the_threshold(make: Make) -> None:
    a, b = make(CacheSettings(semantic_threshold=0.95)).caches
    a.store(scope({"hr"}), "What is the band?", unit(1, 0, 0), ENTRY)
    a.store(scope({"hr"}), "Where is the office?", unit(0, 0, 1), ENTRY)
    near = b.lookup(scope({"hr"}), "Which band applies?", unit(1, 0.1, 0))
    assert near is not None and near.kind == "semantic" and 0.95 < near.similarity < 1.0
    assert b.lookup(scope({"hr"}), "Something else", unit(1, 1, 0)) is None
    assert b.lookup(scope({"hr"}), "Something else", None) is None


def test_vectors_are_stored_as_float32_bytes(make: Make) -> None:
    replicas = make()
    replicas.caches[0].store(scope({"hr"}), "q", unit(*range(1, 385)), ENTRY)
    client = replicas.stores[0]._redis.client
    (vectors,) = list(client.scan_iter(match=replicas.prefix + "*:v"))
    (blob,) = client.hvals(vectors)
    assert len(blob) == 384 * 4
    assert np.allclose(np.frombuffer(blob, dtype=np.float32), unit(*range(1, 385)))


def test_other_groups_tenant_app_or_index_version_never_hit(make: Make) -> None:
    a, b = make(CacheSettings(semantic_threshold=0.5)).caches
    vector = unit(1, 0, 0)
    a.store(scope({"hr"}), "What is the band?", vector, ENTRY)
    for other in (
        scope({"engineering"}),
        scope({"hr", "finance"}),
        scope({"hr"}, tenant="x"),
        scope({"hr"}, app="a"),
        scope({"hr"}, index=2),
    ):
        assert b.lookup(other, "What is the band?", vector) is None
    assert b.lookup(scope({"hr"}), "What is the band?", vector) is not None


def test_entries_expire_and_leave_no_keys_behind(make: Make) -> None:
    replicas = make(CacheSettings(ttl_s=0.4))
    a, b = replicas.caches
    a.store(scope({"hr"}), "What is the band?", unit(1, 0), ENTRY)
    assert b.lookup(scope({"hr"}), "What is the band?", unit(1, 0)) is not None
    client = replicas.stores[0]._redis.client
    keys = list(client.scan_iter(match=replicas.prefix + "*"))
    assert len(keys) == 4 and all(0 < client.pttl(k) <= 400 for k in keys)
    time.sleep(0.6)
    assert b.lookup(scope({"hr"}), "What is the band?", unit(1, 0)) is None
    assert list(client.scan_iter(match=replicas.prefix + "*")) == []


def test_an_expired_entry_is_not_served_while_its_scope_lives(make: Make) -> None:
    a, b = make(CacheSettings(ttl_s=0.5)).caches
    a.store(scope({"hr"}), "old question", unit(1, 0), ENTRY)
    time.sleep(0.35)
    a.store(scope({"hr"}), "new question", unit(0, 1), ENTRY)  # keeps the scope's keys alive
    time.sleep(0.3)
    assert b.lookup(scope({"hr"}), "old question", unit(1, 0)) is None
    assert b.lookup(scope({"hr"}), "new question", None) is not None


def test_a_scope_keeps_at_most_max_entries_least_recently_used_first(make: Make) -> None:
    a, b = make(CacheSettings(max_entries=2)).caches
    a.store(scope({"hr"}), "a one", unit(1, 0, 0), ENTRY)
    time.sleep(0.01)
    a.store(scope({"hr"}), "b two", unit(0, 1, 0), ENTRY)
    time.sleep(0.01)
    assert b.lookup(scope({"hr"}), "a one", None) is not None  # now the most recently used
    time.sleep(0.01)
    a.store(scope({"hr"}), "c three", unit(0, 0, 1), ENTRY)
    assert b.lookup(scope({"hr"}), "b two", unit(0, 1, 0)) is None
    assert b.lookup(scope({"hr"}), "a one", None) is not None
    assert b.lookup(scope({"hr"}), "c three", None) is not None
    a.store(scope({"finance"}), "d four", None, ENTRY)  # another scope has its own room
    assert len(a) == 3


def test_clear_forgets_every_replicas_entries_and_nothing_else(make: Make) -> None:
    first, other = make(), make()
    first.caches[0].store(scope({"hr"}), "q", unit(1, 0), ENTRY)
    other.caches[0].store(scope({"hr"}), "q", unit(1, 0), ENTRY)
    first.caches[1].clear()
    assert first.caches[0].lookup(scope({"hr"}), "q", unit(1, 0)) is None
    assert len(first.caches[0]) == 0
    assert other.caches[0].lookup(scope({"hr"}), "q", None) is not None


def test_disabled_caches_store_nothing(make: Make) -> None:
    cache = make(CacheSettings(exact=False, semantic=False)).caches[0]
    cache.store(scope({"hr"}), "q", unit(1, 0), ENTRY)
    assert len(cache) == 0


def test_exact_only_stores_no_vector_and_semantic_only_skips_the_exact_lookup(make: Make) -> None:
    exact = make(CacheSettings(semantic=False))
    exact.caches[0].store(scope({"hr"}), "q", unit(1, 0), ENTRY)
    client = exact.stores[0]._redis.client
    assert list(client.scan_iter(match=exact.prefix + "*:v")) == []
    assert exact.caches[1].lookup(scope({"hr"}), "q", unit(1, 0)) is not None
    semantic = make(CacheSettings(exact=False))
    semantic.caches[0].store(scope({"hr"}), "q", unit(1, 0), ENTRY)
    hit = semantic.caches[1].lookup(scope({"hr"}), "q", unit(1, 0))
    assert hit is not None and hit.kind == "semantic"
    assert semantic.caches[1].lookup(scope({"hr"}), "q", None) is None


def test_redis_away_is_a_miss_and_counted(own_redis_server: RedisServer) -> None:  # noqa: F811
    replicas = Replicas(own_redis_server.url, CacheSettings())
    try:
        a, b = replicas.caches
        a.store(scope({"hr"}), "q", unit(1, 0), ENTRY)
        own_redis_server.stop()
        started = time.monotonic()
        assert b.lookup(scope({"hr"}), "q", unit(1, 0)) is None
        a.store(scope({"hr"}), "other", unit(0, 1), ENTRY)  # dropped, not raised
        a.clear()
        assert time.monotonic() - started < 10
        assert replicas.errors == ["lookup", "store", "clear"]
        own_redis_server.start()  # an empty Redis on the same port
        a.store(scope({"hr"}), "q", unit(1, 0), ENTRY)
        assert b.lookup(scope({"hr"}), "q", None) is not None
        assert replicas.errors == ["lookup", "store", "clear"]
    finally:
        replicas.close()


def test_the_contract_chooses_the_backend() -> None:
    settings = Contract.model_validate({"name": "x", "routing": {"cache": {"shared_state": "redis"}}}).routing.cache
    with pytest.raises(ConfigError, match="KEEL_REDIS_URL"):
        answer_cache(settings, redis_url=None)
    assert isinstance(answer_cache(CacheSettings(), redis_url="redis://127.0.0.1:1/0"), AnswerCache)
    shared = answer_cache(settings, redis_url="redis://127.0.0.1:1/0", namespace="acme")
    assert isinstance(shared._shared, RedisAnswerStore) and shared._shared._prefix == "keel:cache:acme:"
    shared.close()
