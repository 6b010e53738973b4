"""Answer caches never cross permission scopes; semantic hits need a close question; entries expire."""

from __future__ import annotations

import numpy as np

from keel.contract import CacheSettings
from keel.routing.cache import AnswerCache, CacheEntry, CacheScope, normalise_question, permission_fingerprint

ENTRY = CacheEntry(answer="Band B [1]", citations=((1, "c_1"),), model="m", strategy="generated", prompt="answer@1")


def scope(groups: set[str], *, index: int = 1, app: str = "default", tenant: str = "t") -> CacheScope:
    return CacheScope(
        app=app, prompt="answer@1", index_version=index, fingerprint=permission_fingerprint(tenant, frozenset(groups))
    )


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_exact_hit_ignores_case_spacing_and_trailing_punctuation() -> None:
    cache = AnswerCache(CacheSettings())
    cache.store(scope({"hr"}), "What is the band?", None, ENTRY)
    hit = cache.lookup(scope({"hr"}), "  what IS the   band ", None)
    assert hit is not None and hit.kind == "exact"
    assert normalise_question("Ｗhat?!") == "what"


def test_other_groups_tenant_app_or_index_version_never_hit() -> None:
    cache = AnswerCache(CacheSettings())
    vector = unit(1, 0, 0)
    cache.store(scope({"hr"}), "What is the band?", vector, ENTRY)
    for other in (
        scope({"engineering"}),
        scope({"hr", "finance"}),
        scope({"hr"}, tenant="x"),
        scope({"hr"}, app="a"),
        scope({"hr"}, index=2),
    ):
        assert cache.lookup(other, "What is the band?", vector) is None


def test_semantic_hit_needs_the_threshold() -> None:
    cache = AnswerCache(CacheSettings(semantic_threshold=0.95))
    cache.store(scope({"hr"}), "What is the band?", unit(1, 0, 0), ENTRY)
    near = cache.lookup(scope({"hr"}), "Which band applies?", unit(1, 0.1, 0))
    assert near is not None and near.kind == "semantic" and near.similarity > 0.95
    assert cache.lookup(scope({"hr"}), "Something else", unit(1, 1, 0)) is None


def test_entries_expire_and_the_least_recently_used_go_first() -> None:
    clock = Clock()
    cache = AnswerCache(CacheSettings(ttl_s=10, max_entries=2, semantic=False), clock=clock)
    for question in ("a one", "b two", "c three"):
        cache.store(scope({"hr"}), question, None, ENTRY)
    assert cache.lookup(scope({"hr"}), "a one", None) is None
    assert cache.lookup(scope({"hr"}), "c three", None) is not None
    clock.now = 11
    assert cache.lookup(scope({"hr"}), "c three", None) is None


def test_disabled_caches_store_nothing() -> None:
    cache = AnswerCache(CacheSettings(exact=False, semantic=False))
    cache.store(scope({"hr"}), "q", unit(1, 0), ENTRY)
    assert len(cache) == 0
