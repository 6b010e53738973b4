"""End-to-end ``/v1/ask`` latency and retrieval-only latency on the sample corpus.

Copies the sample project to a temporary folder, ingests it, starts a real
``keel serve`` on 127.0.0.1, asks the sample questions as principals from every
group, and prints p50/p95 figures: end to end over HTTP, per pipeline stage (from
the traces), and retrieval alone (query embedding + filtered hybrid search, in
process). Results are also written as JSON.

    .venv/bin/python benchmarks/ask_latency.py [--requests 153] [--json benchmarks/results/ask_latency.json]

Two passes: as contracted (most look-ups are served by the extractive tier), and
through an app pinned to the local model, so that the embedded model's latency is
measured on every question.

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
from collections import Counter
from dataclasses import dataclass, field
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


@dataclass(kw_only=True)
class Measurement:
    """What one pass over the questions measured."""

    e2e: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    not_model: list[float] = field(default_factory=list)
    modes: Counter[str] = field(default_factory=Counter)
    strategies: Counter[str] = field(default_factory=Counter)


def measure(
    client: httpx.Client,
    app: str,
    cases: list[dict[str, Any]],
    keys: dict[str, str],
    principals: list[dict[str, Any]],
    n: int,
) -> Measurement:
    """Ask ``n`` questions of ``app``, one at a time, and read each trace."""
    out = Measurement()
    for i in range(n):
        case = cases[i % len(cases)]
        headers = {"Authorization": f"Bearer {keys[asker_for(case, principals)]}"}
        started = time.perf_counter()
        body = client.post("/v1/ask", json={"question": case["question"], "app": app}, headers=headers).json()
        out.e2e.append((time.perf_counter() - started) * 1000)
        out.modes[body.get("mode", "error")] += 1
        trace = client.get(f"/v1/traces/{body['request_id']}", headers=headers).json()
        out.strategies[trace["response"].get("answer_strategy") or "-"] += 1
        generate = 0.0
        for span in trace["spans"]:
            if span["status"] != "skipped":
                out.stage_ms.setdefault(span["name"], []).append(span["duration_ms"])
                if span["name"] == "generate":
                    generate = span["duration_ms"]
        out.not_model.append(out.e2e[-1] - generate)
        if (i + 1) % 25 == 0 or i + 1 == n:
            print(f"  {app}: {i + 1}/{n} requests", flush=True)
    return out


def report(title: str, m: Measurement, retrieval: list[float] | None) -> dict[str, Any]:
    """Print one table; return its figures."""
    rows = [("end to end (HTTP)", m.e2e)]
    if retrieval is not None:
        rows.append(("retrieval only (embed + search)", retrieval))
    rows += [(f"  stage {name}", values) for name, values in m.stage_ms.items()]
    rows.append(("end to end minus generate", m.not_model))
    scale = max(percentile(v, 95) for _, v in rows)
    print(f"\n{title}")
    print(f"{'measure':<34}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}  p95")
    for name, values in rows:
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"{name:<34}{len(values):>5}{p50:>10.1f}{p95:>10.1f}  {bar(p95, scale)}")
    print(f"modes: {', '.join(f'{k} {v}' for k, v in sorted(m.modes.items()))}")
    print(f"answer strategies: {', '.join(f'{k} {v}' for k, v in sorted(m.strategies.items()))}")
    return {
        "figures": {
            name.strip(): {
                "n": len(values),
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "mean_ms": statistics.fmean(values) if values else None,
            }
            for name, values in rows
        },
        "modes": dict(m.modes),
        "answer_strategies": dict(m.strategies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=153, help="questions per pass (one at a time)")
    parser.add_argument(
        "--model-app", default="hr-helpdesk", help="an app pinned to the local model, for the second pass"
    )
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
            with httpx.Client(base_url=url, timeout=120) as client:
                routed = measure(client, "default", cases, keys, principals, args.requests)
                pinned = measure(client, args.model_app, cases, keys, principals, args.requests)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            log.close()
        retrieval = retrieval_only(root, cases, rounds=200)

    result = {
        "requests_per_pass": args.requests,
        "machine": {"cpus": os.cpu_count()},
        "cheap_first": report("As contracted (cheap-first routing, app default)", routed, retrieval),
        "local_model": report(f"Every answer from the local model (app {args.model_app})", pinned, None),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
