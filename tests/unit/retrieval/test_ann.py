"""Filtered ANN search: only readable rows, agreement with exact search, both strategies, persistence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from keel.retrieval.ann import ANN, AnnSettings, IvfIndex, build_ivf
from keel.retrieval.search import dense_search, exact_dense_search, hybrid_search
from keel.retrieval.snapshot import IndexSnapshot, PassageRecord, SnapshotWriter

ROWS = 3_000
DIM = 32


def _corpus(seed: int = 3) -> tuple[list[PassageRecord], np.ndarray, list[list[str]]]:
    """Clustered unit vectors; group ``few`` reads ~3% of rows, ``many`` ~50%, ``everyone`` ~2%."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(24, DIM)).astype(np.float32)
    cluster = rng.integers(0, 24, size=ROWS)
    vectors = centres[cluster] + rng.normal(scale=0.35, size=(ROWS, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    draw = rng.random(ROWS)
    passages, words = [], []
    for row in range(ROWS):
        groups = ("everyone",) if draw[row] < 0.02 else ("few",) if draw[row] < 0.05 else ("many",)
        if draw[row] >= 0.5:
            groups = ("other",)
        text = f"passage {row} about cluster{cluster[row]}"
        passages.append(
            PassageRecord(
                chunk_id=f"c_{row}",
                doc_id=f"d_{row // 3}",
                title=f"doc {row // 3}",
                path=f"d{row // 3}.md",
                heading="",
                text=text,
                groups=groups,
                text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
        words.append(["passag", str(row), f"cluster{cluster[row]}"])
    return passages, vectors.astype(np.float32), words


def _write(folder: Path, *, ann_min_rows: int = 0) -> IndexSnapshot:
    passages, vectors, words = _corpus()
    SnapshotWriter(folder, ann_min_rows=ann_min_rows).write(
        version=1, embedder="test", passages=passages, vectors=vectors, passage_terms=words
    )
    return IndexSnapshot(folder)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> IndexSnapshot:
    return _write(tmp_path_factory.mktemp("ann") / "v1")


def _queries(n: int = 25) -> np.ndarray:
    rng = np.random.default_rng(11)
    q = rng.normal(size=(n, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


FEW = frozenset({"few", "everyone"})
MANY = frozenset({"many", "everyone"})


def test_the_index_is_written_with_the_snapshot_and_loaded_with_it(tmp_path: Path) -> None:
    _, vectors, _ = _corpus()
    built, _ = build_ivf(vectors)
    loaded = _write(tmp_path / "v1")
    assert (tmp_path / "v1" / ANN).is_file()
    assert loaded.ann is not None
    np.testing.assert_array_equal(loaded.ann.centroids, built.centroids)
    np.testing.assert_array_equal(loaded.ann.indptr, built.indptr)
    np.testing.assert_array_equal(loaded.ann.rows, built.rows)
    manifest = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    assert manifest["ann"]["lists"] == loaded.ann.lists
    # Every row sits in exactly one list.
    assert sorted(loaded.ann.rows.tolist()) == list(range(ROWS))


def test_small_snapshots_get_no_index_and_are_searched_exactly(tmp_path: Path) -> None:
    small = _write(tmp_path / "v1", ann_min_rows=ROWS + 1)
    assert small.ann is None
    assert not (tmp_path / "v1" / ANN).exists()
    assert IvfIndex.load(tmp_path / "v1") is None
    view = small.view(MANY)
    assert view.list_counts is None
    q = _queries(1)[0]
    assert dense_search(small, q, view, limit=10) == exact_dense_search(small, q, view, limit=10)


@pytest.mark.parametrize("strategy", ["exact", "probe"])
@pytest.mark.parametrize("groups", [FEW, MANY, frozenset({"everyone"})])
def test_never_returns_a_row_the_caller_cannot_read(
    snapshot: IndexSnapshot, groups: frozenset[str], strategy: str
) -> None:
    assert snapshot.ann is not None
    view = snapshot.view(groups)
    for q in _queries():
        result = snapshot.ann.search(snapshot.vectors, q, view, limit=10, strategy=strategy)  # type: ignore[arg-type]
        assert result.hits
        assert all(view.mask[row] for row, _ in result.hits)
        for row, score in result.hits:
            assert score == pytest.approx(float(snapshot.vectors[row] @ q), abs=1e-5)


def test_filters_before_top_k_even_when_every_nearest_row_is_unreadable(snapshot: IndexSnapshot) -> None:
    assert snapshot.ann is not None
    view = snapshot.view(FEW)
    unreadable = np.flatnonzero(~view.mask)
    q = np.asarray(snapshot.vectors[unreadable[0]], dtype=np.float32)
    result = snapshot.ann.search(snapshot.vectors, q, view, limit=10, strategy="probe")
    assert len(result.hits) == 10
    assert int(unreadable[0]) not in {row for row, _ in result.hits}
    # Only readable rows were scored: the count never reflects a row outside the view.
    assert result.scored <= view.count


def test_full_probing_agrees_with_exact_search(snapshot: IndexSnapshot) -> None:
    assert snapshot.ann is not None
    full = IvfIndex(
        centroids=snapshot.ann.centroids,
        indptr=snapshot.ann.indptr,
        rows=snapshot.ann.rows,
        settings=AnnSettings(min_probes=snapshot.ann.lists),
    )
    for groups in (FEW, MANY):
        view = snapshot.view(groups)
        for q in _queries():
            approx = full.search(snapshot.vectors, q, view, limit=10, strategy="probe")
            assert approx.probes == full.lists
            assert approx.scored == view.count
            exact = exact_dense_search(snapshot, q, view, limit=10)
            assert [r for r, _ in approx.hits] == [r for r, _ in exact]


def test_default_probing_reaches_high_recall(snapshot: IndexSnapshot) -> None:
    assert snapshot.ann is not None
    view = snapshot.view(MANY)
    recall = []
    for q in _queries(40):
        approx = {r for r, _ in snapshot.ann.search(snapshot.vectors, q, view, limit=10, strategy="probe").hits}
        exact = {r for r, _ in exact_dense_search(snapshot, q, view, limit=10)}
        recall.append(len(approx & exact) / 10)
    assert np.mean(recall) >= 0.95


def test_narrow_callers_are_scored_exactly_and_broad_ones_probe_deeper_when_narrower(
    snapshot: IndexSnapshot,
) -> None:
    assert snapshot.ann is not None
    ann = IvfIndex(
        centroids=snapshot.ann.centroids,
        indptr=snapshot.ann.indptr,
        rows=snapshot.ann.rows,
        settings=AnnSettings(exact_rows=300, target_candidates=200, min_probes=1),
    )
    few, many = snapshot.view(FEW), snapshot.view(MANY)
    assert few.count <= 300 < many.count
    assert ann.strategy(few) == "exact"
    assert ann.strategy(many) == "probe"
    q = _queries(1)[0]
    narrow = ann.search(snapshot.vectors, q, few, limit=10)
    assert narrow.strategy == "exact"
    assert narrow.scored == few.count
    assert narrow.hits == exact_dense_search(snapshot, q, few, limit=10)
    broad = ann.search(snapshot.vectors, q, many, limit=10)
    assert broad.strategy == "probe"
    assert 200 <= broad.scored < many.count
    # Adaptive depth: the same query probed for the narrow view needs more lists.
    assert ann.search(snapshot.vectors, q, few, limit=10, strategy="probe").probes > broad.probes


def test_per_list_readable_counts_match_the_view(snapshot: IndexSnapshot) -> None:
    assert snapshot.ann is not None
    for groups in (FEW, MANY, frozenset({"nobody"})):
        view = snapshot.view(groups)
        assert view.list_counts is not None
        assert int(view.list_counts.sum()) == view.count
        assert view.rows.tolist() == np.flatnonzero(view.mask).tolist()


def test_search_goes_through_the_index_and_keeps_the_contract(snapshot: IndexSnapshot) -> None:
    q = _queries(1)[0]
    assert dense_search(snapshot, q, snapshot.view(frozenset({"nobody"})), limit=10) == []
    hits = hybrid_search(snapshot, query="cluster3", query_vector=q, groups=FEW, k=5, candidates=20, rrf_k=60)
    view = snapshot.view(FEW)
    assert hits
    assert all(view.mask[h.passage.row] for h in hits)


def test_the_build_is_deterministic() -> None:
    _, vectors, _ = _corpus()
    a, _ = build_ivf(vectors, seed=5)
    b, _ = build_ivf(vectors, seed=5)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.rows, b.rows)
