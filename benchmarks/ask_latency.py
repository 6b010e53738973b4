"""End-to-end ``/v1/ask`` latency and retrieval-only latency on the sample corpus.

Copies the sample project to a temporary folder, ingests it, starts a real
``keel serve`` on 127.0.0.1, asks the sample questions as principals from every
group, and prints p50/p95 figures: end to end over HTTP, per pipeline stage (from
the traces), and retrieval alone (query embedding + filtered hybrid search, in
process). Results are also written as JSON.

    .venv/bin/python benchmarks/ask_latency.py [--requests 60] [--json benchmarks/results/ask_latency.json]

Bounded: a fixed number of requests, one at a time; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from common import bar, free_port, percentile

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "acme"


def prepare(workdir: Path) -> tuple[Path, dict[str, str], list[dict[str, Any]]]:
    """Copy, ingest and key the sample project; return it with keys and question cases."""
    from keel.contract import load_contract
    from keel.identity import KeyStore
    from keel.ingest.ingestor import Ingestor
    from keel.retrieval.embedder import MiniLMEmbedder
    from keel.retrieval.versions import IndexStore
    from keel.store import Database

    root = workdir / "acme"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(".keel"))
    db = Database(root / ".keel" / "keel.db")
    embedder = MiniLMEmbedder(cache_dir=root / ".keel" / "cache")
    embedder.warm_up()
    started = time.perf_counter()
    report = Ingestor(
        contract=load_contract(root / "keel.yaml"),
        docs_dir=root / "docs",
        db=db,
        index_store=IndexStore(root / ".keel" / "index"),
        embedder=embedder,
    ).run()
    print(f"ingested {report.documents} documents, {report.passages} passages in {time.perf_counter() - started:.1f}s")
    principals = yaml.safe_load((root / "principals.yaml").read_text(encoding="utf-8"))
    store = KeyStore(db)
    keys = {
        p["id"]: store.create(
            principal_id=p["id"],
            tenant=principals["tenant"],
            groups=p.get("groups", []),
            roles=p.get("roles", ["user"]),
        ).secret
        for p in principals["principals"]
    }
    db.close()
    cases = yaml.safe_load((root / "evals" / "questions.yaml").read_text(encoding="utf-8"))["cases"]
    return root, keys, cases


def asker_for(case: dict[str, Any], principals: list[dict[str, Any]]) -> str:
    """A principal allowed to read the case's document (or the staff-only one)."""
    allowed = set(case.get("allowed_groups") or [])
    for p in principals:
        if allowed & ({*p.get("groups", []), "everyone"}):
            return str(p["id"])
    return str(principals[0]["id"])


def retrieval_only(root: Path, cases: list[dict[str, Any]], rounds: int) -> list[float]:
    """Milliseconds per query for embedding + filtered hybrid search, in process."""
    from keel.contract import load_contract
    from keel.retrieval.embedder import MiniLMEmbedder
    from keel.retrieval.search import hybrid_search
    from keel.retrieval.versions import IndexStore

    contract = load_contract(root / "keel.yaml")
    embedder = MiniLMEmbedder(cache_dir=root / ".keel" / "cache")
    embedder.warm_up()
    snapshot = IndexStore(root / ".keel" / "index").current()
    timings = []
    for i in range(rounds):
        case = cases[i % len(cases)]
        groups = frozenset({*(case.get("allowed_groups") or []), "everyone"})
        started = time.perf_counter()
        vector = embedder.embed_one(case["question"])
        hybrid_search(
            snapshot,
            query=case["question"],
            query_vector=vector,
            groups=groups,
            k=contract.retrieval.top_k * 2,
            candidates=contract.retrieval.candidates,
            rrf_k=contract.retrieval.rrf_k,
        )
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60, help="HTTP requests to send (one at a time)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "ask_latency.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        root, keys, cases = prepare(Path(tmp))
        principals = yaml.safe_load((root / "principals.yaml").read_text(encoding="utf-8"))["principals"]
        port = free_port()
        log = (Path(tmp) / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "keel", "--project", str(root), "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KEEL_LOG_LEVEL": "warning"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                raise SystemExit("server did not become ready")
            e2e: list[float] = []
            modes: dict[str, int] = {}
            strategies: dict[str, int] = {}
            stage_ms: dict[str, list[float]] = {}
            not_model: list[float] = []
            with httpx.Client(base_url=url, timeout=120) as client:
                for i in range(args.requests):
                    case = cases[i % len(cases)]
                    key = keys[asker_for(case, principals)]
                    headers = {"Authorization": f"Bearer {key}"}
                    started = time.perf_counter()
                    response = client.post("/v1/ask", json={"question": case["question"]}, headers=headers)
                    e2e.append((time.perf_counter() - started) * 1000)
                    body = response.json()
                    modes[body.get("mode", "error")] = modes.get(body.get("mode", "error"), 0) + 1
                    trace = client.get(f"/v1/traces/{body['request_id']}", headers=headers).json()
                    strategy = trace["response"].get("answer_strategy") or "-"
                    strategies[strategy] = strategies.get(strategy, 0) + 1
                    generate = 0.0
                    for span in trace["spans"]:
                        if span["status"] != "skipped":
                            stage_ms.setdefault(span["name"], []).append(span["duration_ms"])
                            if span["name"] == "generate":
                                generate = span["duration_ms"]
                    not_model.append(e2e[-1] - generate)
                    if (i + 1) % 10 == 0 or i + 1 == args.requests:
                        print(f"{i + 1}/{args.requests} requests", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            log.close()
        retrieval = retrieval_only(root, cases, rounds=200)

    rows = [("end to end (HTTP)", e2e), ("retrieval only (embed + search)", retrieval)]
    rows += [(f"  stage {name}", values) for name, values in stage_ms.items()]
    rows.append(("end to end minus generate", not_model))
    scale = max(percentile(v, 95) for _, v in rows)
    print(f"\n{'measure':<34}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}  p95")
    for name, values in rows:
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"{name:<34}{len(values):>5}{p50:>10.1f}{p95:>10.1f}  {bar(p95, scale)}")
    print(f"\nmodes: {', '.join(f'{m} {n}' for m, n in sorted(modes.items()))}")
    print(f"answer strategies: {', '.join(f'{s} {n}' for s, n in sorted(strategies.items()))}")
    result = {
        "requests": args.requests,
        "machine": {"cpus": os.cpu_count()},
        "figures": {
            name.strip(): {
                "n": len(values),
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "mean_ms": statistics.fmean(values) if values else None,
            }
            for name, values in rows
        },
        "modes": modes,
        "answer_strategies": strategies,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
