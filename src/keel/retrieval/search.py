"""Hybrid search with the ACL filter applied inside each side, before top-k.

Both the lexical (BM25) and the dense (cosine) side score only rows the caller may
read: the permission mask is applied to candidate scores before any ranking, so
results, scores and counts never reflect a passage outside the caller's groups.
The two ranked lists are fused with reciprocal-rank fusion; every score is kept.
A large snapshot's dense side is approximate (:mod:`keel.retrieval.ann`), with the
same filter inside the probe; a small one is scanned exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from keel.retrieval.ann import top_rows
from keel.retrieval.fusion import reciprocal_rank_fusion
from keel.retrieval.snapshot import AclView, IndexSnapshot, Passage
from keel.text import terms

__all__ = [
    "BM25_B",
    "BM25_K1",
    "Hit",
    "dense_search",
    "exact_dense_search",
    "hybrid_search",
    "lexical_search",
    "readable_document_frequency",
]

BM25_K1 = 1.2
BM25_B = 0.75


DenseSearch = Callable[[NDArray[np.float32], int], list[tuple[int, float]]]
"""A dense search over one version for one principal: ``(query_vector, limit) -> [(row, cosine)]``."""


@dataclass(frozen=True, kw_only=True)
class Hit:
    """A retrieved passage with every score that ranked it."""

    passage: Passage
    fused_score: float
    fused_rank: int
    lexical_score: float | None
    lexical_rank: int | None
    dense_score: float | None
    dense_rank: int | None


def lexical_search(snapshot: IndexSnapshot, query: str, view: AclView, *, limit: int) -> list[tuple[int, float]]:
    """BM25 over the readable rows only: ``[(row, score)]``, best first.

    Collection statistics (N, document frequency, average length) are those of the
    readable rows, so a score is the same as in an index of only those passages.
    """
    n = view.count
    if n == 0 or limit <= 0:
        return []
    allowed = view.mask
    query_terms = set(terms(query))
    scores = np.zeros(snapshot.size, dtype=np.float32)
    avg = view.avg_length
    touched = False
    for term in query_terms:
        index = snapshot.vocab.get(term)
        if index is None:
            continue
        start, end = snapshot.term_indptr[index], snapshot.term_indptr[index + 1]
        rows = snapshot.term_rows[start:end]
        keep = allowed[rows]
        if not keep.any():
            continue
        rows = rows[keep]
        tfs = snapshot.term_tfs[start:end][keep]
        df = float(rows.size)
        idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
        norm = tfs + BM25_K1 * (1.0 - BM25_B + BM25_B * snapshot.lengths[rows] / avg)
        scores[rows] += idf * tfs * (BM25_K1 + 1.0) / norm
        touched = True
    if not touched:
        return []
    candidates = np.flatnonzero(scores > 0)
    return top_rows(candidates, scores[candidates], limit)


def readable_document_frequency(snapshot: IndexSnapshot, term_set: set[str], view: AclView) -> dict[str, int]:
    """How many readable passages contain each term (0 for terms no readable passage has)."""
    out: dict[str, int] = {}
    for term in term_set:
        index = snapshot.vocab.get(term)
        if index is None:
            out[term] = 0
            continue
        rows = snapshot.term_rows[snapshot.term_indptr[index] : snapshot.term_indptr[index + 1]]
        out[term] = int(view.mask[rows].sum())
    return out


def dense_search(
    snapshot: IndexSnapshot, query_vector: NDArray[np.float32], view: AclView, *, limit: int
) -> list[tuple[int, float]]:
    """Cosine similarity over the readable rows only: ``[(row, score)]``, best first.

    Uses the snapshot's ANN index when it has one (filtered inside the probe), else
    scans every readable row.
    """
    if snapshot.ann is not None:
        return snapshot.ann.search(snapshot.vectors, query_vector, view, limit=limit).hits
    return exact_dense_search(snapshot, query_vector, view, limit=limit)


def exact_dense_search(
    snapshot: IndexSnapshot, query_vector: NDArray[np.float32], view: AclView, *, limit: int
) -> list[tuple[int, float]]:
    """Cosine similarity of every readable row, exactly: ``[(row, score)]``, best first."""
    if view.count == 0 or limit <= 0:
        return []
    rows = view.rows
    scores = np.asarray(snapshot.vectors[rows] @ query_vector, dtype=np.float32)
    return top_rows(rows, scores, limit)


def hybrid_search(
    snapshot: IndexSnapshot,
    *,
    query: str,
    query_vector: NDArray[np.float32] | None,
    groups: frozenset[str],
    k: int,
    candidates: int,
    rrf_k: int,
    dense: DenseSearch | None = None,
) -> list[Hit]:
    """Top ``k`` passages readable by ``groups``, lexical and dense fused.

    ``query_vector`` may be ``None`` (embedder unavailable): the search is then lexical only.
    ``dense`` replaces the snapshot's own dense search (pgvector: ``dense(vector, limit)``,
    filtered by the same groups inside its query). Passages with identical text are
    collapsed to the best-ranked one.
    """
    view = snapshot.view(groups)
    lexical = lexical_search(snapshot, query, view, limit=candidates)
    if query_vector is None:
        dense_hits: list[tuple[int, float]] = []
    elif dense is not None:
        dense_hits = dense(query_vector, candidates)
    else:
        dense_hits = dense_search(snapshot, query_vector, view, limit=candidates)
    fused = reciprocal_rank_fusion([lexical, dense_hits], k=rrf_k)
    lexical_by_row = {row: (rank, score) for rank, (row, score) in enumerate(lexical, start=1)}
    dense_by_row = {row: (rank, score) for rank, (row, score) in enumerate(dense_hits, start=1)}
    ordered_rows = [row for row, _ in fused]
    hits: list[Hit] = []
    seen_text: set[str] = set()
    # Fetch a few extra rows so that collapsing duplicates still leaves k results.
    for passage, (row, score) in zip(snapshot.passages(ordered_rows[: k * 3]), fused[: k * 3], strict=True):
        if passage.text_sha256 in seen_text:
            continue
        seen_text.add(passage.text_sha256)
        lex = lexical_by_row.get(row)
        den = dense_by_row.get(row)
        hits.append(
            Hit(
                passage=passage,
                fused_score=score,
                fused_rank=len(hits) + 1,
                lexical_score=lex[1] if lex else None,
                lexical_rank=lex[0] if lex else None,
                dense_score=den[1] if den else None,
                dense_rank=den[0] if den else None,
            )
        )
        if len(hits) == k:
            break
    return hits
