"""Filtered approximate dense search: an IVF index whose probes honour the ACL, before top-k.

A snapshot of at least :data:`ANN_MIN_ROWS` passages gets an inverted-file index when
it is written: spherical k-means centroids over its vectors and, per centroid, the
rows nearest to it (``ann.npz`` in the version folder). A search never ranks a row the
caller may not read; which rows it scores depends on how much the caller can read:

* ``exact``, for a narrow caller (few readable rows): every readable row is scored,
  from the view's readable row list (the union of the caller's group postings, cached
  with the view). Nothing is approximate, and the cost is that of those rows alone.
* ``probe``, for a broad caller (many readable rows): the lists nearest to the query
  are probed, best first, until they hold at least ``target_candidates`` *readable*
  rows (the view counts readable rows per list), so the probe depth adapts to the
  caller's selectivity: a caller who reads 5% of the rows probes about ten times as
  many lists as one who reads half. Inside the probed lists the mask drops unreadable
  rows before any score is computed.

The cost of ``exact`` grows with the readable rows, that of ``probe`` with
``target_candidates`` (vectors gathered) plus the probed lists (row ids checked, about
``target_candidates`` divided by the readable share), so ``exact`` is chosen when the
readable rows are at most ``exact_rows`` or at most ``exact_share`` of all rows.

Scores and counts are therefore computed over readable rows only, as in exact search.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from keel.retrieval.snapshot import AclView

__all__ = ["ANN", "ANN_MIN_ROWS", "AnnResult", "AnnSettings", "IvfIndex", "build_ivf", "top_rows"]

ANN = "ann.npz"
ANN_MIN_ROWS = 20_000
"""Snapshots smaller than this are searched exactly: scanning them is already fast."""

Strategy = Literal["exact", "probe"]

_BLOCK = 16_384


@dataclass(frozen=True, kw_only=True)
class AnnSettings:
    """How a filtered search chooses between exact scoring and probing.

    ``exact_rows``, ``exact_share``: callers who can read at most this many rows, or at
    most this share of all rows, are scored exactly.
    ``target_candidates``: readable rows the probed lists must hold, at least.
    ``min_probes`` and ``min_probe_share``: lists probed at least (a count, and a share
    of all lists), whatever their readable counts: a query's nearest rows spread over
    several lists even for a caller who can read everything.

    The defaults reach recall@10 >= 0.95 against exact search on the synthetic corpora
    of ``benchmarks/retrieval_scale.py`` (100k and 1M rows, readers of 7% and 38%).
    """

    exact_rows: int = 4_096
    exact_share: float = 0.01
    target_candidates: int = 4_096
    min_probes: int = 8
    min_probe_share: float = 0.016


@dataclass(frozen=True, kw_only=True)
class AnnResult:
    """The best readable rows for one query, and how they were found."""

    hits: list[tuple[int, float]]
    strategy: Strategy
    probes: int
    scored: int


class IvfIndex:
    """Centroids and, per centroid, the rows assigned to it (CSR: ``indptr``, ``rows``)."""

    def __init__(
        self,
        *,
        centroids: NDArray[np.float32],
        indptr: NDArray[np.int64],
        rows: NDArray[np.int32],
        settings: AnnSettings | None = None,
    ) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int32)
        self.settings = settings or AnnSettings()

    @property
    def lists(self) -> int:
        """Number of inverted lists."""
        return int(self.centroids.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the index."""
        return int(self.centroids.nbytes + self.indptr.nbytes + self.rows.nbytes)

    def save(self, folder: Path) -> None:
        """Write ``ann.npz`` into a snapshot folder."""
        np.savez(folder / ANN, centroids=self.centroids, indptr=self.indptr, rows=self.rows)

    @classmethod
    def load(cls, folder: Path) -> IvfIndex | None:
        """The index stored in ``folder``, or ``None`` when the snapshot has none."""
        path = folder / ANN
        if not path.is_file():
            return None
        data = np.load(path)
        return cls(centroids=data["centroids"], indptr=data["indptr"], rows=data["rows"])

    def readable_per_list(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """How many rows of each list ``mask`` lets through (computed once per ACL view)."""
        running = np.zeros(self.rows.size + 1, dtype=np.int64)
        np.cumsum(mask[self.rows], out=running[1:])
        counts: NDArray[np.int64] = running[self.indptr[1:]] - running[self.indptr[:-1]]
        return counts

    def strategy(self, view: AclView) -> Strategy:
        """``exact`` when the caller reads few enough rows to score them all cheaply, else ``probe``."""
        s = self.settings
        few = view.count <= max(s.exact_rows, s.target_candidates) or view.count <= s.exact_share * view.mask.size
        return "exact" if few else "probe"

    def search(
        self,
        vectors: NDArray[np.float32],
        query: NDArray[np.float32],
        view: AclView,
        *,
        limit: int,
        strategy: Strategy | None = None,
    ) -> AnnResult:
        """The ``limit`` best readable rows for ``query`` (``strategy`` forces one, for tests and benchmarks)."""
        if view.count == 0 or limit <= 0:
            return AnnResult(hits=[], strategy=strategy or "exact", probes=0, scored=0)
        chosen = strategy or self.strategy(view)
        q = np.asarray(query, dtype=np.float32)
        if chosen == "exact":
            rows = view.rows
            scores = np.asarray(vectors[rows] @ q, dtype=np.float32)
            return AnnResult(hits=top_rows(rows, scores, limit), strategy="exact", probes=0, scored=int(rows.size))
        counts = view.list_counts if view.list_counts is not None else self.readable_per_list(view.mask)
        order = np.argsort(-(self.centroids @ q))
        wanted = min(view.count, max(self.settings.target_candidates, limit))
        reached = np.cumsum(counts[order])
        probes = int(np.searchsorted(reached, wanted)) + 1
        floor = max(self.settings.min_probes, math.ceil(self.settings.min_probe_share * self.lists))
        probes = min(self.lists, max(probes, floor))
        starts, ends = self.indptr[order[:probes]], self.indptr[order[:probes] + 1]
        candidates = np.concatenate([self.rows[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])
        candidates = candidates[view.mask[candidates]]
        candidates.sort()  # gather in row order: sequential reads of the vector file
        scores = np.asarray(vectors[candidates] @ q, dtype=np.float32)
        return AnnResult(
            hits=top_rows(candidates, scores, limit), strategy="probe", probes=probes, scored=int(candidates.size)
        )


def default_lists(rows: int) -> int:
    """Lists for ``rows`` vectors: about the square root, so a list and the centroid table are similar sizes."""
    return max(16, round(math.sqrt(rows)))


def build_ivf(
    vectors: NDArray[np.float32],
    *,
    lists: int | None = None,
    seed: int = 0,
    iterations: int = 10,
    sample_per_list: int = 48,
) -> tuple[IvfIndex, dict[str, Any]]:
    """Train spherical k-means on a sample of ``vectors`` and assign every row; returns the index and its stats."""
    started = time.perf_counter()
    n = int(vectors.shape[0])
    k = min(n, lists or default_lists(n))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, k * sample_per_list), replace=False))
    train = np.ascontiguousarray(vectors[sample], dtype=np.float32)
    centroids = train[rng.choice(train.shape[0], size=k, replace=False)].copy()
    for _ in range(iterations):
        assign = _assign(train, centroids)
        centroids = _means(train, assign, k, centroids, rng)
    assign = np.concatenate(
        [_assign(np.asarray(vectors[s : s + _BLOCK], dtype=np.float32), centroids) for s in range(0, n, _BLOCK)]
    )
    order = np.argsort(assign, kind="stable").astype(np.int32)
    indptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(np.bincount(assign, minlength=k), out=indptr[1:])
    index = IvfIndex(centroids=centroids, indptr=indptr, rows=order)
    sizes = np.diff(indptr)
    stats = {
        "kind": "ivf",
        "lists": k,
        "largest_list": int(sizes.max()) if k else 0,
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    return index, stats


def top_rows(rows: NDArray[Any], scores: NDArray[np.float32], limit: int) -> list[tuple[int, float]]:
    """``[(row, score)]`` of the ``limit`` best scores, best first (ties by row)."""
    if rows.size == 0:
        return []
    if rows.size > limit:
        part = np.argpartition(-scores, limit - 1)[:limit]
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))
    return [(int(rows[i]), float(scores[i])) for i in order]


def _assign(block: NDArray[np.float32], centroids: NDArray[np.float32]) -> NDArray[np.int64]:
    out = np.empty(block.shape[0], dtype=np.int64)
    for s in range(0, block.shape[0], _BLOCK):
        out[s : s + _BLOCK] = np.argmax(block[s : s + _BLOCK] @ centroids.T, axis=1)
    return out


def _means(
    train: NDArray[np.float32],
    assign: NDArray[np.int64],
    k: int,
    previous: NDArray[np.float32],
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Normalised cluster means; an empty cluster restarts at a random training vector."""
    counts = np.bincount(assign, minlength=k)
    order = np.argsort(assign, kind="stable")
    filled = np.flatnonzero(counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[filled]
    sums = np.add.reduceat(train[order], starts, axis=0)
    centroids = previous.copy()
    centroids[filled] = sums
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        centroids[empty] = train[rng.choice(train.shape[0], size=empty.size, replace=False)]
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return np.asarray(centroids / np.maximum(norms, 1e-12), dtype=np.float32)
