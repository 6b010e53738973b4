"""Ingestion throughput, and where its time goes, with the real MiniLM embedder.

Two corpora, each ingested from scratch into a temporary project through the
product's own path (``Ingestor(...).run(progress=...)``):

* the sample project (``examples/acme``, copied without its ``.keel`` folder);
* a synthetic project of ``--docs`` Markdown files (default 2,000) written into a
  temporary ``docs/`` folder, spread over a few contract sources and groups, with
  front matter, headings and paragraphs assembled from the sample's own sentences.

Phases are timed from the progress callback and from a timing wrapper around the
embedder: reading + parsing + chunking + injection scan (until the first embedding
call), embedding (inside ``embed()``, with the process's CPU time over wall time),
the SQLite write (from the last embedding to the ``index`` stage) and the snapshot
publish (from ``index`` to the end). Parsing, chunking and the injection scan are
also timed apart on the same files, and the embedder alone on a sample of the same
passage texts with 1 and with 2 onnxruntime threads. Then the incremental path:
a re-run with nothing changed, and one with 1% of the files edited.

    .venv/bin/python benchmarks/ingest_throughput.py [--docs 2000] [--json benchmarks/results/ingest_throughput.json]

Bounded: a fixed corpus (about 3 passages a document), a few minutes on an idle
2-core machine; embedding dominates, so the time grows with ``--docs``. Figures on a
2-core machine are noisy, more so when other work shares it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "acme"
SOURCES = [
    ("handbook", ["everyone"]),
    ("engineering", ["engineering"]),
    ("finance", ["finance"]),
    ("legal", ["legal", "executives"]),
    ("people", ["hr"]),
]
THREAD_SAMPLE = 256


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class TimedEmbedder:
    """Wraps an embedder; records wall and CPU time spent inside ``embed()``."""

    inner: Any
    calls: int = 0
    texts: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    first_start: float | None = None
    last_end: float | None = None
    sizes: list[int] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        """The wrapped embedder's model id."""
        return str(self.inner.model_id)

    @property
    def dim(self) -> int:
        """The wrapped embedder's vector size."""
        return int(self.inner.dim)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed, timing the call."""
        started, cpu = time.perf_counter(), _cpu()
        if self.first_start is None:
            self.first_start = started
        out: NDArray[np.float32] = self.inner.embed(texts)
        self.last_end = time.perf_counter()
        self.wall += self.last_end - started
        self.cpu += _cpu() - cpu
        self.calls += 1
        self.texts += len(texts)
        self.sizes.append(len(texts))
        return out

    def embed_one(self, text: str) -> NDArray[np.float32]:
        """One text's vector."""
        return self.embed([text])[0]

    def reset(self) -> None:
        """Forget the timings of earlier runs."""
        self.calls = self.texts = 0
        self.wall = self.cpu = 0.0
        self.first_start = self.last_end = None
        self.sizes = []


def copy_sample(workdir: Path) -> Path:
    """The sample project, copied without its ``.keel`` folder."""
    root = workdir / "acme"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(".keel"))
    return root


def _sentences() -> list[str]:
    found: list[str] = []
    for path in sorted((SAMPLE / "docs").rglob("*.md")):
        body = path.read_text(encoding="utf-8").split("---", 2)[-1]
        for raw in body.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", "|", "-", "*", ">")):
                continue
            found.extend(s for s in re.split(r"(?<=[.!?])\s+", line) if len(s.split()) >= 6)
    return found


def synthetic_project(workdir: Path, docs: int, seed: int = 11) -> Path:
    """A project of ``docs`` Markdown files over a few sources; returns its root."""
    rng = random.Random(seed)
    sentences = _sentences()
    headings = sorted({w.strip(".,;:()").capitalize() for s in sentences for w in s.split() if len(w) > 7})
    root = workdir / "synthetic"
    contract = yaml.safe_load((SAMPLE / "keel.yaml").read_text(encoding="utf-8"))
    contract["sources"] = [
        {"name": name, "path": name, "owner": f"{name}@example.org", "groups": groups, "refresh": "1d"}
        for name, groups in SOURCES
    ]
    (root / "docs").mkdir(parents=True)
    (root / "keel.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    for i in range(docs):
        source, _ = SOURCES[i % len(SOURCES)]
        folder = root / "docs" / source / f"area-{i % 17:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        title = f"{rng.choice(headings)} {rng.choice(headings).lower()} note {i}"
        lines = ["---", f"title: {json.dumps(title)}"]
        if i % 10 == 0:  # some documents narrow their source's groups
            lines.append("groups: [executives]")
        lines += ["---", f"# {title}", ""]
        for _ in range(rng.randint(1, 4)):
            lines += [f"## {rng.choice(headings)} and {rng.choice(headings).lower()}", ""]
            for _ in range(rng.randint(1, 2)):
                lines += [
                    " ".join(rng.sample(sentences, rng.randint(3, 5))) + f" Reference {i}-{rng.randint(0, 999)}.",
                    "",
                ]
        (folder / f"doc-{i:05d}.md").write_text("\n".join(lines), encoding="utf-8")
    return root


@dataclass
class Ingest:
    """One ingestor over one project, with its timed embedder."""

    root: Path
    embedder: TimedEmbedder
    ingestor: Any
    db: Any

    @classmethod
    def open(cls, root: Path, embedder: Any) -> Ingest:
        """Construct the product's ingestor as ``keel ingest`` does."""
        from keel.contract import load_contract
        from keel.ingest.ingestor import Ingestor
        from keel.project import Project
        from keel.retrieval.versions import IndexStore
        from keel.settings import Settings

        timed = TimedEmbedder(embedder)
        db = Project.open(Settings(project=root)).open_database()
        ingestor = Ingestor(
            contract=load_contract(root / "keel.yaml"),
            docs_dir=root / "docs",
            db=db,
            index_store=IndexStore(root / ".keel" / "index"),
            embedder=timed,
        )
        return cls(root, timed, ingestor, db)

    def run(self) -> dict[str, Any]:
        """One timed ingest: totals, phases and what was skipped or embedded."""
        marks: dict[str, float] = {}

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            marks.setdefault(f"{stage}_first", now)
            marks[f"{stage}_last"] = now

        self.embedder.reset()
        started, cpu = time.perf_counter(), _cpu()
        report = self.ingestor.run(progress=progress)
        ended = time.perf_counter()
        cpu_total = _cpu() - cpu
        e = self.embedder
        index_at = marks.get("index_first", ended)
        read_end = e.first_start if e.first_start is not None else min(index_at, ended)
        embed_end = e.last_end if e.last_end is not None else read_end
        phases = {
            "scan, read, parse, chunk, injection scan": read_end - started,
            "embedding (inside embed())": e.wall,
            "SQLite write (documents, chunks)": max(0.0, index_at - embed_end),
            "snapshot publish (index version)": max(0.0, ended - index_at),
        }
        phases["other (between embedding calls)"] = max(0.0, (ended - started) - sum(phases.values()))
        wall = ended - started
        return {
            "seconds": wall,
            "cpu_seconds": cpu_total,
            "documents": report.documents,
            "passages": report.passages,
            "added": len(report.added),
            "updated": len(report.updated),
            "unchanged": len(report.unchanged),
            "failed": len(report.failed),
            "passages_embedded": report.passages_embedded,
            "docs_per_s": (len(report.added) + len(report.updated)) / wall if wall else 0.0,
            "chunks_per_s": report.passages_embedded / wall if wall else 0.0,
            "version": report.version,
            "phases": phases,
            "embed_calls": e.calls,
            "embed_call_size_max": max(e.sizes, default=0),
            "embed_cpu_over_wall": e.cpu / e.wall if e.wall else 0.0,
        }


def parse_chunk_apart(root: Path) -> dict[str, Any]:
    """Parse, chunk and injection-scan every file again, timing each step."""
    from keel.contract import load_contract
    from keel.ingest.chunker import chunk_document
    from keel.ingest.parsers import parse_file
    from keel.policy.injection import InjectionDetector

    contract = load_contract(root / "keel.yaml")
    detector = InjectionDetector(threshold=contract.policy.injection.threshold)
    files = sorted(p for p in (root / "docs").rglob("*") if p.is_file())
    parse = chunk = scan = 0.0
    texts: list[str] = []
    for path in files:
        t0 = time.perf_counter()
        try:
            parsed = parse_file(path)
        except Exception:  # an unparseable sample file is skipped, as ingest does
            continue
        t1 = time.perf_counter()
        drafts = chunk_document(parsed, doc_path=path.relative_to(root / "docs").as_posix(), settings=contract.chunking)
        t2 = time.perf_counter()
        for d in drafts:
            detector.scan_passage(d.text)
        t3 = time.perf_counter()
        parse, chunk, scan = parse + t1 - t0, chunk + t2 - t1, scan + t3 - t2
        texts.extend(f"{d.heading}\n{d.text}" for d in drafts)
    return {
        "files": len(files),
        "chunks": len(texts),
        "parse_s": parse,
        "chunk_s": chunk,
        "scan_s": scan,
        "texts": texts,
    }


def embed_threads(texts: list[str], cache_dir: Path) -> list[dict[str, float]]:
    """Embedding throughput on the same passage texts with 1 and 2 onnxruntime threads."""
    from keel.retrieval.embedder import MiniLMEmbedder

    sample = texts[:THREAD_SAMPLE]
    out = []
    for threads in (1, 2):
        embedder = MiniLMEmbedder(cache_dir=cache_dir, intra_op_threads=threads)
        embedder.warm_up()
        embedder.embed(sample[:32])
        started, cpu = time.perf_counter(), _cpu()
        embedder.embed(sample)
        wall = time.perf_counter() - started
        out.append(
            {
                "threads": threads,
                "batch_size": embedder.batch_size,
                "chunks": len(sample),
                "seconds": wall,
                "chunks_per_s": len(sample) / wall,
                "cpu_over_wall": (_cpu() - cpu) / wall,
            }
        )
    return out


def edit_files(root: Path, share: float) -> int:
    """Append a paragraph to ``share`` of the Markdown files; returns how many."""
    files = sorted((root / "docs").rglob("*.md"))
    chosen = files[:: max(1, round(1 / share))][: max(1, round(len(files) * share))]
    for path in chosen:
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\n\n## Amendment\n\nThis section was revised after the quarterly review of the document.\n")
    return len(chosen)


def print_phases(label: str, run: dict[str, Any]) -> None:
    """The phase table of one full ingest."""
    total = run["seconds"]
    chunks = max(1, run["passages_embedded"])
    print(f"\n{label}: {run['added']} documents, {run['passages_embedded']} chunks in {total:.1f}s")
    print(
        f"  {run['docs_per_s']:.1f} documents/s, {run['chunks_per_s']:.1f} chunks/s;"
        f" CPU/wall {run['cpu_seconds'] / total:.2f}"
    )
    print(f"  {'phase':<44} {'seconds':>8} {'share':>6} {'ms/chunk':>9}")
    for name, seconds in run["phases"].items():
        print(f"  {name:<44} {seconds:8.2f} {seconds / total:6.1%} {seconds * 1000 / chunks:9.2f}")
    print(
        f"  embedding: {run['embed_calls']} calls of up to {run['embed_call_size_max']} texts,"
        f" CPU/wall inside embed() {run['embed_cpu_over_wall']:.2f}"
    )


def verdict(run: dict[str, Any], threads: list[dict[str, float]]) -> list[str]:
    """Plain statements about the bottleneck."""
    phases = run["phases"]
    total = run["seconds"]
    embed = phases["embedding (inside embed())"]
    parse = phases["scan, read, parse, chunk, injection scan"]
    write = phases["SQLite write (documents, chunks)"] + phases["snapshot publish (index version)"]
    both = run["embed_cpu_over_wall"] > 1.5
    speedup = threads[1]["chunks_per_s"] / threads[0]["chunks_per_s"]
    return [
        f"embedding is {embed / total:.0%} of the time: the bottleneck"
        if embed / total > 0.5
        else f"embedding is only {embed / total:.0%} of the time",
        f"parsing/chunking/injection scan: {parse / total:.0%} ({'a' if parse / total > 0.25 else 'not a'} bottleneck)",
        f"SQLite write + snapshot publish: {write / total:.0%} ({'a' if write / total > 0.25 else 'not a'} bottleneck)",
        f"embedding is batched ({run['embed_calls']} calls of up to {run['embed_call_size_max']} texts,"
        f" onnxruntime batches of {threads[0]['batch_size']:.0f})"
        f" and {'uses both cores' if both else 'does NOT use both cores'}"
        f" (CPU/wall {run['embed_cpu_over_wall']:.2f}); 2 threads vs 1: {speedup:.2f}x",
    ]


def main() -> int:
    """Run every measurement and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="synthetic Markdown documents")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "ingest_throughput.json")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from keel.retrieval.embedder import MiniLMEmbedder

    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "note": "2-core machine: figures are noisy"}
    with tempfile.TemporaryDirectory(prefix="keel-ingest-") as tmp:
        workdir = Path(tmp)
        cache = workdir / "cache"
        embedder = MiniLMEmbedder(cache_dir=cache)
        t0 = time.perf_counter()
        embedder.warm_up()
        results["warm_up_s"] = time.perf_counter() - t0
        print(f"embedder warm-up {results['warm_up_s']:.1f}s ({os.cpu_count()} cores; figures are noisy)")

        for name, root in (
            ("sample", copy_sample(workdir)),
            ("synthetic", synthetic_project(workdir, args.docs)),
        ):
            ingest = Ingest.open(root, embedder)
            full = ingest.run()
            print_phases(f"{name} corpus, full ingest", full)
            unchanged = ingest.run()
            print(
                f"  re-run, nothing changed: {unchanged['seconds']:.2f}s, {unchanged['unchanged']} unchanged, "
                f"{unchanged['passages_embedded']} embedded"
            )
            edited = edit_files(root, 0.01)
            changed = ingest.run()
            print(
                f"  re-run, {edited} files (1%) changed: {changed['seconds']:.2f}s, {changed['updated']} updated, "
                f"{changed['passages_embedded']} embedded, {changed['unchanged']} unchanged"
            )
            ingest.db.close()
            apart = parse_chunk_apart(root)
            texts = apart.pop("texts")
            print(
                f"  apart: parse {apart['parse_s']:.2f}s, chunk {apart['chunk_s']:.2f}s,"
                f" injection scan {apart['scan_s']:.2f}s for {apart['files']} files, {apart['chunks']} chunks"
            )
            entry: dict[str, Any] = {
                "full": full,
                "unchanged": unchanged,
                "changed_1pct": {**changed, "files_edited": edited},
                "parse_chunk_apart": apart,
            }
            if name == "synthetic":
                threads = embed_threads(texts, cache)
                for t in threads:
                    print(
                        f"  embed alone, {t['threads']:.0f} thread(s), batch {t['batch_size']:.0f}:"
                        f" {t['chunks_per_s']:.1f} chunks/s, CPU/wall {t['cpu_over_wall']:.2f}"
                    )
                entry["embed_threads"] = threads
                entry["verdict"] = verdict(full, threads)
                print("\n".join(f"  - {line}" for line in entry["verdict"]))
            results[name] = entry
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
