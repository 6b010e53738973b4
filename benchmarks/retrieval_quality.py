"""Retrieval quality of lexical-only, dense-only and hybrid search, side by side.

On the sample suite (each case's relevant documents, searched as its asker, so with
the ACL filter) and on any BEIR-format dataset given by path (``corpus.jsonl``,
``queries.jsonl``, ``qrels/test.tsv``), which is written out as text documents and
ingested through Keel's own ingestion, then searched through Keel's own search.

    .venv/bin/python benchmarks/retrieval_quality.py [--beir PATH] [--k 10] [--max-queries 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import bar

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "acme"
MODES = ("lexical", "dense", "hybrid")


def rankers(snapshot: Any, embedder: Any, candidates: int) -> dict[str, Callable[[str, frozenset[str]], list[str]]]:
    """Functions question, groups -> ranked document paths, one per search mode."""
    from keel.retrieval.search import dense_search, hybrid_search, lexical_search

    def paths(rows: list[tuple[int, float]]) -> list[str]:
        return list(dict.fromkeys(p.path for p in snapshot.passages([r for r, _ in rows])))

    def lexical(q: str, groups: frozenset[str]) -> list[str]:
        return paths(lexical_search(snapshot, q, snapshot.view(groups), limit=candidates))

    def dense(q: str, groups: frozenset[str]) -> list[str]:
        return paths(dense_search(snapshot, embedder.embed_one(q), snapshot.view(groups), limit=candidates))

    def hybrid(q: str, groups: frozenset[str]) -> list[str]:
        hits = hybrid_search(
            snapshot,
            query=q,
            query_vector=embedder.embed_one(q),
            groups=groups,
            k=candidates,
            candidates=candidates,
            rrf_k=60,
        )
        return list(dict.fromkeys(h.passage.path for h in hits))

    return {"lexical": lexical, "dense": dense, "hybrid": hybrid}


def score(
    queries: list[tuple[str, frozenset[str], dict[str, int]]], rank: Callable[[str, frozenset[str]], list[str]], k: int
) -> dict[str, float]:
    """Mean recall@k, MRR and nDCG@10 over queries with graded relevant documents."""
    from keel.evals.metrics import ndcg_at, recall_at, reciprocal_rank

    recall = mrr = ndcg = 0.0
    started = time.perf_counter()
    for question, groups, grades in queries:
        ranked = rank(question, groups)
        relevant = set(grades)
        recall += recall_at(ranked, relevant, k)
        mrr += reciprocal_rank(ranked, relevant)
        ndcg += ndcg_at(ranked, grades, 10)
    n = max(len(queries), 1)
    return {
        "recall@k": recall / n,
        "mrr": mrr / n,
        "ndcg@10": ndcg / n,
        "ms_per_query": (time.perf_counter() - started) * 1000 / n,
    }


def ingest(root: Path) -> tuple[Any, Any]:
    from keel.contract import load_contract
    from keel.ingest.ingestor import Ingestor
    from keel.project import Project
    from keel.retrieval.embedder import MiniLMEmbedder
    from keel.retrieval.versions import IndexStore
    from keel.settings import Settings

    embedder = MiniLMEmbedder(cache_dir=root / ".keel" / "cache")
    db = Project.open(Settings(project=root)).open_database()
    report = Ingestor(
        contract=load_contract(root / "keel.yaml"),
        docs_dir=root / "docs",
        db=db,
        index_store=IndexStore(root / ".keel" / "index"),
        embedder=embedder,
    ).run()
    db.close()
    print(f"  ingested {report.documents} documents, {report.passages} passages")
    return IndexStore(root / ".keel" / "index").current(), embedder


def sample_queries(root: Path) -> list[tuple[str, frozenset[str], dict[str, int]]]:
    from keel.evals.suite import load_suite

    loaded = load_suite(root / "evals" / "core.yaml")
    out = []
    for case in loaded.suite.cases:
        grades = {r.doc: r.grade for r in case.expect.relevant if r.doc}
        if grades:
            out.append((case.question, loaded.asker_of(case).groups | {"everyone"}, grades))
    return out


def beir_project(dataset: Path, root: Path, max_queries: int) -> list[tuple[str, frozenset[str], dict[str, int]]]:
    """Write a BEIR corpus as a Keel project readable by everyone; return its test queries."""
    (root / "docs").mkdir(parents=True)
    (root / "keel.yaml").write_text("access: {default_groups: [everyone]}\n", encoding="utf-8")
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(doc["_id"]))
            title = (doc.get("title") or "").strip() or f"Document {doc['_id']}"
            (root / "docs" / f"{name}.txt").write_text(f"{title}\n\n{doc.get('text', '')}\n", encoding="utf-8")
    queries = {}
    with (dataset / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (dataset / "qrels" / "test.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            grade = int(row.get("score", 1))
            if grade > 0:
                name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in row["corpus-id"])
                qrels.setdefault(row["query-id"], {})[f"{name}.txt"] = grade
    selected = [(queries[qid], frozenset({"everyone"}), grades) for qid, grades in qrels.items() if qid in queries]
    return selected[:max_queries]


def report(title: str, results: dict[str, dict[str, float]], k: int) -> None:
    print(f"\n{title}")
    print(f"{'mode':<10}{'recall@' + str(k):>12}{'MRR':>10}{'nDCG@10':>10}{'ms/query':>10}  nDCG@10")
    for mode in MODES:
        r = results[mode]
        print(
            f"{mode:<10}{r['recall@k']:>12.3f}{r['mrr']:>10.3f}{r['ndcg@10']:>10.3f}{r['ms_per_query']:>10.1f}  "
            f"{bar(r['ndcg@10'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, default=None, help="a BEIR-format dataset folder")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-queries", type=int, default=300)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "retrieval_quality.json")
    args = parser.parse_args()
    out: dict[str, Any] = {"k": args.k}
    with tempfile.TemporaryDirectory(prefix="keel-quality-") as tmp:
        print("sample suite:")
        root = Path(tmp) / "acme"
        shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(".keel"))
        snapshot, embedder = ingest(root)
        queries = sample_queries(root)
        rank = rankers(snapshot, embedder, candidates=40)
        out["sample"] = {mode: score(queries, rank[mode], args.k) for mode in MODES}
        report(
            f"Sample suite: {len(queries)} questions with relevant documents, searched as their askers",
            out["sample"],
            args.k,
        )
        if args.beir is not None:
            print(f"\nBEIR dataset {args.beir}:")
            beir_root = Path(tmp) / "beir"
            queries = beir_project(args.beir, beir_root, args.max_queries)
            snapshot, embedder = ingest(beir_root)
            rank = rankers(snapshot, embedder, candidates=100)
            out["beir"] = {mode: score(queries, rank[mode], args.k) for mode in MODES}
            report(f"{args.beir.name}: {len(queries)} test queries", out["beir"], args.k)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
