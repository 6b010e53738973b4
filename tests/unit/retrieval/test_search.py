"""Hybrid search: the ACL filter works inside each side, before top-k, and leaks nothing through scores."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from keel.retrieval.fusion import reciprocal_rank_fusion
from keel.retrieval.search import hybrid_search
from keel.retrieval.snapshot import IndexSnapshot, PassageRecord, SnapshotWriter
from keel.text import terms

CORPUS = [
    ("Salary bands", "Senior engineer salary band is EUR 78,000 to 96,000.", ("hr",)),
    ("Salary review", "Salary bands are reviewed each March by the pay committee.", ("hr",)),
    ("Leave", "Staff get 27 days of annual leave and salary is paid monthly.", ("everyone",)),
    ("Payroll", "Salary is paid on the 25th of each month via the payroll system.", ("everyone",)),
    ("Incident", "The routing engine failed when a TLS certificate expired.", ("engineering",)),
    ("Board", "The board approved the acquisition budget.", ("executives",)),
]


def _vector(text: str, dim: int = 16) -> np.ndarray:
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _write(folder: Path, rows: list[tuple[str, str, tuple[str, ...]]]) -> IndexSnapshot:
    passages = [
        PassageRecord(
            chunk_id=f"c_{title}",
            doc_id=f"d_{title}",
            title=title,
            path=f"{title}.md",
            heading=title,
            text=text,
            groups=groups,
            text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        )
        for title, text, groups in rows
    ]
    vectors = np.vstack([_vector(p.text) for p in passages])
    SnapshotWriter(folder).write(
        version=1,
        embedder="test",
        passages=passages,
        vectors=vectors,
        passage_terms=[terms(f"{p.heading}\n{p.text}") for p in passages],
    )
    return IndexSnapshot(folder)


@pytest.fixture
def full(tmp_path: Path) -> IndexSnapshot:
    return _write(tmp_path / "full", CORPUS)


def _search(snapshot: IndexSnapshot, query: str, groups: set[str], k: int = 10) -> list:  # type: ignore[type-arg]
    return hybrid_search(
        snapshot,
        query=query,
        query_vector=_vector("salary band"),
        groups=frozenset(groups),
        k=k,
        candidates=50,
        rrf_k=60,
    )


def test_results_only_contain_readable_passages(full: IndexSnapshot) -> None:
    hits = _search(full, "salary band", {"everyone", "engineering"})
    assert hits
    assert all(set(h.passage.groups) & {"everyone", "engineering"} for h in hits)
    assert "Salary bands" not in [h.passage.title for h in hits]


def test_scores_equal_those_of_an_index_of_only_readable_passages(full: IndexSnapshot, tmp_path: Path) -> None:
    readable = [row for row in CORPUS if set(row[2]) & {"everyone"}]
    only = _write(tmp_path / "only", readable)
    a = _search(full, "salary band paid", {"everyone"})
    b = _search(only, "salary band paid", {"everyone"})
    assert [h.passage.chunk_id for h in a] == [h.passage.chunk_id for h in b]
    for x, y in zip(a, b, strict=True):
        assert x.lexical_score == pytest.approx(y.lexical_score)
        assert x.dense_score == pytest.approx(y.dense_score)
        assert x.fused_score == pytest.approx(y.fused_score)


def test_top_k_is_filled_from_readable_passages_not_truncated_after_filtering(full: IndexSnapshot) -> None:
    # Two restricted passages outrank everything lexically; a filter applied after top-2 would return nothing.
    hits = _search(full, "salary bands", {"everyone"}, k=2)
    assert len(hits) == 2
    assert {h.passage.title for h in hits} == {"Leave", "Payroll"}


def test_a_caller_with_no_readable_passage_gets_nothing(full: IndexSnapshot) -> None:
    assert _search(full, "salary", {"nobody"}) == []


def test_lexical_only_search_when_no_query_vector(full: IndexSnapshot) -> None:
    hits = hybrid_search(
        full,
        query="certificate expired",
        query_vector=None,
        groups=frozenset({"engineering"}),
        k=3,
        candidates=10,
        rrf_k=60,
    )
    assert [h.passage.title for h in hits] == ["Incident"]
    assert hits[0].dense_score is None and hits[0].lexical_score is not None


def test_identical_texts_are_collapsed(tmp_path: Path) -> None:
    rows = [("A", "Same words about leave.", ("everyone",)), ("B", "Same words about leave.", ("everyone",))]
    snapshot = _write(tmp_path / "dup", rows)
    hits = _search(snapshot, "leave words", {"everyone"})
    assert len(hits) == 1


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([[(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.8)]], k=60)
    assert fused[0][0] == 2
    assert [item for item, _ in fused] == [2, 1, 3]
