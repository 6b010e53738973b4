"""Dense retrieval in a real PostgreSQL with pgvector: the ACL filter inside the query, recall against exact search."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from keel.errors import ConfigError
from keel.retrieval.pgvector import PgVectorIndex
from keel.store import PostgresDatabase, SqliteDatabase

DIM = 64
ROWS = 3000
GROUPS = [f"g{i}" for i in range(60)]
Corpus = tuple[NDArray[np.float32], list[list[str]]]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """Unit vectors in clusters, each row readable by 1-3 groups, one in ten also by everyone."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, DIM))
    vectors = centres[rng.integers(0, 40, ROWS)] + 0.6 * rng.normal(size=(ROWS, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    acls = []
    for _ in range(ROWS):
        acl = list(rng.choice(GROUPS, size=int(rng.integers(1, 4)), replace=False))
        if rng.random() < 0.1:
            acl.append("everyone")
        acls.append([str(g) for g in acl])
    return vectors.astype(np.float32), acls


@pytest.fixture
def index(postgres_url: str, corpus: Corpus) -> Iterator[PgVectorIndex]:
    db = PostgresDatabase(postgres_url, schema=f"keel_pgv_{uuid.uuid4().hex[:8]}")
    made = PgVectorIndex(db, dimensions=DIM, ef_search=100)
    made.publish(1, *corpus)
    yield made
    db.close()


def _exact(corpus: Corpus, query: NDArray[np.float32], groups: frozenset[str], k: int) -> list[int]:
    vectors, acls = corpus
    readable = [i for i, acl in enumerate(acls) if groups & set(acl)]
    scores = vectors[readable] @ query
    return [readable[i] for i in np.argsort(-scores)[:k]]


PRINCIPALS = {
    "narrow": frozenset({"g3", "everyone"}),
    "broad": frozenset({*GROUPS[:20], "everyone"}),
    "public only": frozenset({"everyone"}),
}


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_a_search_returns_only_rows_the_principal_may_read(index: PgVectorIndex, corpus: Corpus, who: str) -> None:
    groups = PRINCIPALS[who]
    vectors, acls = corpus
    for q in range(10):
        hits = index.search(1, vectors[q * 97], groups, limit=10)
        assert len(hits) == 10, "a narrow principal still gets a full page"
        assert all(groups & set(acls[row]) for row, _ in hits)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_a_principal_without_groups_gets_nothing(index: PgVectorIndex, corpus: Corpus) -> None:
    assert index.search(1, corpus[0][0], frozenset(), limit=10) == []
    assert index.search(1, corpus[0][0], frozenset({"nobody-has-this"}), limit=10) == []


@pytest.mark.parametrize("who", ["narrow", "broad"])
def test_filtered_recall_at_10_against_exact_filtered_search_is_at_least_095(
    index: PgVectorIndex, corpus: Corpus, who: str
) -> None:
    groups = PRINCIPALS[who]
    rng = np.random.default_rng(11)
    found = total = 0
    for q in rng.integers(0, ROWS, 40):
        query = corpus[0][q] + 0.2 * rng.normal(size=DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        truth = set(_exact(corpus, query, groups, 10))
        got = {row for row, _ in index.search(1, query, groups, limit=10)}
        found += len(truth & got)
        total += len(truth)
    assert found / total >= 0.95, found / total


def test_scores_are_the_cosine_similarity(index: PgVectorIndex, corpus: Corpus) -> None:
    vectors, _ = corpus
    row, score = index.search(1, vectors[5], frozenset([*GROUPS, "everyone"]), limit=1)[0]
    assert row == 5 and score == pytest.approx(1.0, abs=1e-5)


def test_a_version_is_replaced_whole_and_pruned_versions_are_dropped(index: PgVectorIndex, corpus: Corpus) -> None:
    vectors, acls = corpus
    index.publish(2, vectors[:100], acls[:100])
    index.publish(2, vectors[:50], acls[:50])
    assert index.count(1) == ROWS and index.count(2) == 50
    index.retain([2])
    assert index.count(1) == 0 and index.count(2) == 50
    assert all(row < 50 for row, _ in index.search(2, vectors[0], frozenset(GROUPS), limit=60))


def test_pgvector_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KEEL_DATABASE_URL"):
        PgVectorIndex(SqliteDatabase(tmp_path / "k.db"), dimensions=DIM)
