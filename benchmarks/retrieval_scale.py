"""Filtered retrieval at scale: ANN vs exact, for narrow and broad principals.

For each size: generate (or reuse) a synthetic corpus written by the product's own
snapshot writer (see ``corpus_gen.py``), load it with ``IndexSnapshot``, and for
narrow principals (a few small groups) and broad ones (the big groups and more)
measure, per query: filtered ANN dense search, exact filtered dense search, and hybrid
search with each; recall@10 of ANN against exact; index build time; memory per chunk.
ACL views are built once per principal first (their cold cost is reported apart).

    .venv/bin/python benchmarks/retrieval_scale.py --sizes 100000,1000000

Prints a table with the targets and writes ``benchmarks/results/retrieval_scale.json``.
Searches run with one BLAS thread (``OPENBLAS_NUM_THREADS=1`` unless set): a search is
one request among many, and on a shared 2-core machine a multi-threaded matrix-vector
product mostly waits for its threads.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import percentile
from corpus_gen import CorpusSpec, generate, group_name, load_meta

from keel.retrieval.search import dense_search, exact_dense_search, hybrid_search
from keel.retrieval.snapshot import IndexSnapshot

RESULTS = Path(__file__).resolve().parent / "results" / "retrieval_scale.json"
TARGET_P95_MS = {100_000: 15.0, 1_000_000: 50.0}
TARGET_RECALL = 0.95
K = 10
CANDIDATES = 40
RRF_K = 60
KINDS = ("narrow", "broad", "restricted")
QUERY_NOISE = 0.04
"""Per-dimension noise around a topic centroid: a query's cosine to it is about 0.8."""


@dataclass(frozen=True, kw_only=True)
class Query:
    """One question: the asker's groups, a vector near a subtopic centroid, and words of its topic."""

    groups: frozenset[str]
    vector: np.ndarray
    text: str


def principals(kind: str, count: int, groups: int, rng: np.random.Generator) -> list[frozenset[str]]:
    """``narrow``: 5-8 of the less popular groups; ``broad``: the 6 biggest groups and 6-14 more.

    Both also read ``everyone``. ``restricted``: 1-2 of the least popular groups and not
    ``everyone`` (a service account of one team), the case scored exactly.
    """
    out = []
    for _ in range(count):
        if kind == "restricted":
            picked = rng.choice(np.arange(150, groups), size=int(rng.integers(1, 3)), replace=False).tolist()
            out.append(frozenset(group_name(int(g)) for g in picked))
            continue
        if kind == "narrow":
            picked = rng.choice(np.arange(100, groups), size=int(rng.integers(5, 9)), replace=False).tolist()
        else:
            extra = rng.choice(np.arange(6, groups), size=int(rng.integers(6, 15)), replace=False).tolist()
            picked = list(range(6)) + extra
        out.append(frozenset({group_name(int(g)) for g in picked} | {"everyone"}))
    return out


def queries(kind: str, meta: dict[str, Any], spec: CorpusSpec, *, count: int, seed: int) -> list[Query]:
    """``count`` queries from 20 principals of ``kind``, each a vector near a topic centroid and words of that topic."""
    rng = np.random.default_rng(seed + KINDS.index(kind))
    people = principals(kind, 20, spec.groups, rng)
    subs = meta["sub_centroids"].reshape(spec.topics, spec.subtopics, -1)
    topics = subs.mean(axis=1)  # the subtopics are drawn around their topic's centroid
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    vocab = meta["vocab"]
    out = []
    for i in range(count):
        topic = int(rng.integers(0, spec.topics))
        v = topics[topic] + rng.standard_normal(topics.shape[1]).astype(np.float32) * np.float32(QUERY_NOISE)
        words = spec.general_words + topic * spec.topic_words + rng.integers(0, 60, size=4)
        out.append(
            Query(
                groups=people[i % len(people)],
                vector=(v / np.linalg.norm(v)).astype(np.float32),
                text=" ".join(str(w) for w in vocab[words]),
            )
        )
    return out


def corpus(size: int, seed: int, cache: Path) -> tuple[Path, CorpusSpec]:
    """The corpus folder of ``size`` chunks, generated unless cached."""
    spec = CorpusSpec(chunks=size, seed=seed)
    folder = cache / f"corpus-{size}-seed{seed}"
    if not (folder / "snapshot" / "manifest.json").is_file() or not (folder / "meta.npz").is_file():
        print(f"generating {size:,} chunks into {folder} ...", file=sys.stderr)
        generate(spec, folder)
    return folder, spec


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _timed(search: Callable[[Any], Any], items: list[Any]) -> tuple[list[float], list[Any]]:
    """Milliseconds and result of ``search(item)`` for every item, in order."""
    times, results = [], []
    for item in items:
        t = time.perf_counter()
        results.append(search(item))
        times.append(_ms(t))
    return times, results


def measure(snapshot: IndexSnapshot, qs: list[Query]) -> dict[str, Any]:
    """Latency, recall and strategy of one class of principals."""
    exact_snapshot = copy.copy(snapshot)
    exact_snapshot.ann = None  # the same arrays, searched exactly
    cold = []
    for q in {q.groups for q in qs}:
        t = time.perf_counter()
        snapshot.view(q)
        cold.append(_ms(t))
    counts = [snapshot.view(q.groups).count / snapshot.size for q in qs]
    for q in qs[:10]:  # warm-up
        dense_search(snapshot, q.vector, snapshot.view(q.groups), limit=K)
    # One pass per kind of search: an exact scan of a broad view churns hundreds of MB,
    # which would otherwise land on the timing of the ANN search after it.
    kwargs = [{"query": q.text, "query_vector": q.vector, "groups": q.groups, "k": K} for q in qs]
    for kw in kwargs:
        kw |= {"candidates": CANDIDATES, "rrf_k": RRF_K}
    ann_ms, ann_hits = _timed(lambda q: dense_search(snapshot, q.vector, snapshot.view(q.groups), limit=K), qs)
    hybrid_ms, hybrid_hits = _timed(lambda kw: hybrid_search(snapshot, **kw), kwargs)
    exact_ms, exact_hits = _timed(
        lambda q: exact_dense_search(snapshot, q.vector, snapshot.view(q.groups), limit=K), qs
    )
    hybrid_exact_ms, hybrid_exact_hits = _timed(lambda kw: hybrid_search(exact_snapshot, **kw), kwargs)
    recall, hybrid_recall, probes = [], [], []
    strategies: dict[str, int] = {}
    for q, ann, exact, hybrid, hybrid_exact in zip(
        qs, ann_hits, exact_hits, hybrid_hits, hybrid_exact_hits, strict=True
    ):
        truth = {row for row, _ in exact}
        recall.append(len(truth & {row for row, _ in ann}) / max(1, len(truth)))
        hybrid_truth = {h.passage.chunk_id for h in hybrid_exact}
        hybrid_recall.append(len(hybrid_truth & {h.passage.chunk_id for h in hybrid}) / max(1, len(hybrid_truth)))
        if snapshot.ann is not None:
            result = snapshot.ann.search(snapshot.vectors, q.vector, snapshot.view(q.groups), limit=K)
            strategies[result.strategy] = strategies.get(result.strategy, 0) + 1
            probes.append(result.probes)
        else:
            strategies["exact"] = strategies.get("exact", 0) + 1
    return {
        "queries": len(qs),
        "principals": len({q.groups for q in qs}),
        "readable_share": {"mean": float(np.mean(counts)), "min": float(np.min(counts)), "max": float(np.max(counts))},
        "view_cold_ms": {"p50": percentile(cold, 50), "max": max(cold)},
        "ann_ms": {"p50": percentile(ann_ms, 50), "p95": percentile(ann_ms, 95)},
        "exact_ms": {"p50": percentile(exact_ms, 50), "p95": percentile(exact_ms, 95)},
        "recall_at_10": float(np.mean(recall)),
        "recall_at_10_min": float(np.min(recall)),
        "hybrid_ms": {"p50": percentile(hybrid_ms, 50), "p95": percentile(hybrid_ms, 95)},
        "hybrid_exact_ms": {"p50": percentile(hybrid_exact_ms, 50), "p95": percentile(hybrid_exact_ms, 95)},
        "hybrid_recall_at_10": float(np.mean(hybrid_recall)),
        "strategies": strategies,
        "probes_p50": percentile([float(p) for p in probes], 50) if probes else 0.0,
    }


def memory_per_chunk(snapshot: IndexSnapshot) -> dict[str, float]:
    """Bytes per chunk held for search: vectors, ANN, lexical postings, ACL postings."""
    n = snapshot.size
    lexical = snapshot.term_indptr.nbytes + snapshot.term_rows.nbytes + snapshot.term_tfs.nbytes
    lexical += snapshot.lengths.nbytes + sum(len(t) for t in snapshot.vocab) * 4
    acl = snapshot._group_indptr.nbytes + snapshot._group_rows.nbytes
    parts = {
        "embeddings": snapshot.vectors.nbytes / n,
        "ann": (snapshot.ann.nbytes if snapshot.ann is not None else 0) / n,
        "postings": lexical / n,
        "acl": acl / n,
    }
    parts["total"] = sum(parts.values())
    return parts


def run_size(size: int, *, seed: int, count: int, cache: Path) -> dict[str, Any]:
    """Every figure for one corpus size."""
    folder, spec = corpus(size, seed, cache)
    t = time.perf_counter()
    snapshot = IndexSnapshot(folder / "snapshot")
    load_s = time.perf_counter() - t
    np.asarray(snapshot.vectors).sum()  # page the vectors in, as a serving process would have them
    meta = load_meta(folder)
    out: dict[str, Any] = {
        "chunks": size,
        "load_seconds": round(load_s, 3),
        "ann": snapshot.manifest.get("ann"),
        "memory_bytes_per_chunk": memory_per_chunk(snapshot),
    }
    for kind in KINDS:
        print(f"measuring {size:,} / {kind} ...", file=sys.stderr)
        out[kind] = measure(snapshot, queries(kind, meta, spec, count=count, seed=seed))
    return out


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def table(results: list[dict[str, Any]]) -> str:
    """The figures beside the targets."""
    lines = [
        f"{'chunks':>9} {'principal':<10} {'readable':>8} {'ANN p50':>8} {'ANN p95':>8} {'target':>8} "
        f"{'exact p95':>9} {'recall@10':>9} {'hybrid p95':>10} {'h.recall':>8} {'strategy':<16} verdict",
    ]
    for r in results:
        target = TARGET_P95_MS.get(r["chunks"], 50.0)
        for kind in KINDS:
            m = r[kind]
            ok = m["ann_ms"]["p95"] < target and m["recall_at_10"] >= TARGET_RECALL
            strategy = ",".join(f"{k}:{v}" for k, v in sorted(m["strategies"].items()))
            lines.append(
                f"{r['chunks']:>9,} {kind:<10} {m['readable_share']['mean']:>8.1%} {m['ann_ms']['p50']:>6.1f}ms"
                f" {m['ann_ms']['p95']:>6.1f}ms {'<' + format(target, '.0f') + 'ms':>8}"
                f" {m['exact_ms']['p95']:>7.1f}ms {m['recall_at_10']:>9.3f} {m['hybrid_ms']['p95']:>8.1f}ms"
                f" {m['hybrid_recall_at_10']:>8.3f} {strategy:<16} {verdict(ok)}"
            )
        mem = r["memory_bytes_per_chunk"]
        ann = r["ann"] or {}
        lines.append(
            f"{'':>9} build {ann.get('build_seconds', 0):.1f}s ({ann.get('lists', 0)} lists),"
            f" load {r['load_seconds']:.1f}s,"
            f" memory/chunk {mem['total']:.0f} B (embeddings {mem['embeddings']:.0f}, ANN {mem['ann']:.1f},"
            f" postings {mem['postings']:.0f}, ACL {mem['acl']:.1f})"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, measure every size, print and save."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated corpus sizes, in chunks")
    parser.add_argument("--queries", type=int, default=200, help="queries per class of principal")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "keel-bench")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        results.append(run_size(size, seed=args.seed, count=args.queries, cache=args.cache))
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "load_average": os.getloadavg(),
        },
        "targets": {"p95_ms": TARGET_P95_MS, "recall_at_10": TARGET_RECALL},
        "k": K,
        "results": results,
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
