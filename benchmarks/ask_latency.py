"""End-to-end ``/v1/ask`` latency, split by stage, and time to first token on the sample corpus.

Copies the sample project to a temporary folder, ingests it, starts a real
``keel serve`` on 127.0.0.1, asks the sample questions as principals from every
group, and prints p50/p95 figures: end to end over HTTP, per pipeline stage (from
the traces), everything except model inference (end to end minus the traced
``chat <model>`` calls inside ``generate``, against a 50 ms p95 target), retrieval
alone (query embedding + filtered hybrid search, in process), and time to first
token when the same questions are streamed through ``/v1/chat/completions``.
A text chart shows where the mean request's time goes. Results are also written as JSON.

    .venv/bin/python benchmarks/ask_latency.py [--requests 40] [--json benchmarks/results/ask_latency.json]

Two apps: as contracted (most look-ups are served by the extractive tier), and one
pinned to the local model, so that the embedded model's latency is measured on
every question. The streaming passes run against a freshly started server, so
they are not answered from the answer cache the ``/v1/ask`` passes filled.

Bounded: ``--requests`` questions per pass, one at a time (the default takes a few
minutes on 2 cores); each server is stopped at the end of its passes.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from common import bar, free_port, percentile

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "acme"
NOT_MODEL_TARGET_P95_MS = 50.0
"""Target for everything except model inference, at p95."""


def prepare(workdir: Path) -> tuple[Path, dict[str, str], list[dict[str, Any]]]:
    """Copy, ingest and key the sample project; return it with keys and question cases."""
    from keel.contract import load_contract
    from keel.identity import KeyStore
    from keel.ingest.ingestor import Ingestor
    from keel.project import Project
    from keel.retrieval.embedder import MiniLMEmbedder
    from keel.retrieval.versions import IndexStore
    from keel.settings import Settings

    root = workdir / "acme"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(".keel"))
    db = Project.open(Settings(project=root)).open_database()
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
    not_generate: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    """Per request, the summed duration of the ``chat <model>`` calls (0 when none ran)."""
    not_model: list[float] = field(default_factory=list)
    not_inference: list[float] = field(default_factory=list)
    """As ``not_model``, but the extractive tier's calls (Keel's own CPU work, no inference) stay in."""
    modes: Counter[str] = field(default_factory=Counter)
    strategies: Counter[str] = field(default_factory=Counter)


@dataclass(kw_only=True)
class StreamMeasurement:
    """What one streaming pass over the questions measured."""

    ttft: list[float] = field(default_factory=list)
    """Milliseconds from sending the request to the first SSE chunk that carries content."""
    e2e: list[float] = field(default_factory=list)
    modes: Counter[str] = field(default_factory=Counter)


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
        generate = model = extractive = 0.0
        for span in trace["spans"]:
            if span["status"] != "skipped":
                out.stage_ms.setdefault(span["name"], []).append(span["duration_ms"])
                if span["name"] == "generate":
                    generate = span["duration_ms"]
                    calls = [c for c in span.get("children") or [] if c["name"].startswith("chat ")]
                    model = sum(c["duration_ms"] for c in calls)
                    extractive = sum(
                        c["duration_ms"] for c in calls if (c.get("attributes") or {}).get("provider") == "extractive"
                    )
        out.not_generate.append(out.e2e[-1] - generate)
        out.model_ms.append(model)
        out.not_model.append(out.e2e[-1] - model)
        out.not_inference.append(out.e2e[-1] - model + extractive)
        if (i + 1) % 25 == 0 or i + 1 == n:
            print(f"  {app}: {i + 1}/{n} requests", flush=True)
    return out


def measure_stream(
    client: httpx.Client,
    app: str,
    cases: list[dict[str, Any]],
    keys: dict[str, str],
    principals: list[dict[str, Any]],
    n: int,
) -> StreamMeasurement:
    """Stream ``n`` questions through ``/v1/chat/completions`` as ``app``, one at a time."""
    out = StreamMeasurement()
    for i in range(n):
        case = cases[i % len(cases)]
        headers = {"Authorization": f"Bearer {keys[asker_for(case, principals)]}"}
        payload = {"model": app, "messages": [{"role": "user", "content": case["question"]}], "stream": True}
        first: float | None = None
        mode = "error"
        started = time.perf_counter()
        with client.stream("POST", "/v1/chat/completions", json=payload, headers=headers) as response:
            if response.status_code == 200:
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line.removeprefix("data: "))
                    choices = chunk.get("choices") or [{}]
                    if first is None and (choices[0].get("delta") or {}).get("content"):
                        first = (time.perf_counter() - started) * 1000
                    if "keel" in chunk:
                        mode = chunk["keel"].get("mode") or "-"
            else:
                response.read()
        out.e2e.append((time.perf_counter() - started) * 1000)
        if first is not None:
            out.ttft.append(first)
        out.modes[mode] += 1
        if (i + 1) % 25 == 0 or i + 1 == n:
            print(f"  {app} (streaming): {i + 1}/{n} requests", flush=True)
    return out


def stage_chart(m: Measurement) -> dict[str, float]:
    """Print where the mean request's time goes, ``generate`` split into model calls and the rest."""
    parts: dict[str, float] = {}
    for name, values in m.stage_ms.items():
        mean = sum(values) / len(m.e2e)  # a stage absent from a request counts as 0 ms there
        if name == "generate":
            model = statistics.fmean(m.model_ms)
            parts["generate: model calls"] = model
            parts["generate: other"] = max(mean - model, 0.0)
        else:
            parts[name] = mean
    e2e = statistics.fmean(m.e2e)
    parts["outside stages (HTTP, server)"] = max(e2e - sum(parts.values()), 0.0)
    scale = max(parts.values())
    print(f"where the mean request's {e2e:.1f} ms go:")
    for name, value in parts.items():
        print(f"  {name:<30}{value:>9.1f} ms {value / e2e:>6.1%}  {bar(value, scale)}")
    return parts


def report(title: str, m: Measurement, stream: StreamMeasurement, retrieval: list[float] | None) -> dict[str, Any]:
    """Print one table, the target and the stage chart; return the figures."""
    rows = [("end to end (HTTP)", m.e2e)]
    if retrieval is not None:
        rows.append(("retrieval only (embed + search)", retrieval))
    rows += [(f"  stage {name}", values) for name, values in m.stage_ms.items()]
    rows += [
        ("  model calls (chat <model>)", m.model_ms),
        ("end to end minus generate", m.not_generate),
        ("everything except model inference", m.not_model),
        ("  same, extractive tier counted in", m.not_inference),
        ("streaming: time to first token", stream.ttft),
        ("streaming: end to end", stream.e2e),
    ]
    scale = max(percentile(v, 95) for _, v in rows if v)
    print(f"\n{title}")
    print(f"{'measure':<34}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}  p95")
    for name, values in rows:
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"{name:<34}{len(values):>5}{p50:>10.1f}{p95:>10.1f}  {bar(p95, scale)}")
    not_model_p95 = percentile(m.not_model, 95)
    verdict = "PASS" if not_model_p95 < NOT_MODEL_TARGET_P95_MS else "MISS"
    print(
        f"everything except model inference: p95 {not_model_p95:.1f} ms, "
        f"target < {NOT_MODEL_TARGET_P95_MS:.0f} ms: {verdict}"
    )
    print(f"modes: {', '.join(f'{k} {v}' for k, v in sorted(m.modes.items()))}")
    print(f"streaming modes: {', '.join(f'{k} {v}' for k, v in sorted(stream.modes.items()))}")
    print(f"answer strategies: {', '.join(f'{k} {v}' for k, v in sorted(m.strategies.items()))}")
    chart = stage_chart(m)
    return {
        "not_model_target": {
            "p95_ms": not_model_p95,
            "target_p95_ms": NOT_MODEL_TARGET_P95_MS,
            "verdict": verdict,
        },
        "stage_breakdown_mean_ms": chart,
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
        "streaming_modes": dict(stream.modes),
        "answer_strategies": dict(m.strategies),
    }


@contextmanager
def serving(root: Path, log_path: Path) -> Iterator[str]:
    """Run ``keel serve`` on the project until the block ends; yield its URL once ready."""
    port = free_port()
    log = log_path.open("ab")
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
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--requests", type=int, default=40, help="questions per pass, one at a time (four passes; 153 asks each once)"
    )
    parser.add_argument(
        "--model-app", default="hr-helpdesk", help="an app pinned to the local model, for the second pass"
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "ask_latency.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keel-bench-") as tmp:
        root, keys, cases = prepare(Path(tmp))
        principals = yaml.safe_load((root / "principals.yaml").read_text(encoding="utf-8"))["principals"]
        log = Path(tmp) / "server.log"
        with serving(root, log) as url, httpx.Client(base_url=url, timeout=120) as client:
            routed = measure(client, "default", cases, keys, principals, args.requests)
            pinned = measure(client, args.model_app, cases, keys, principals, args.requests)
        # A fresh server, so that the streamed questions are not served from the answer cache.
        with serving(root, log) as url, httpx.Client(base_url=url, timeout=120) as client:
            routed_stream = measure_stream(client, "default", cases, keys, principals, args.requests)
            pinned_stream = measure_stream(client, args.model_app, cases, keys, principals, args.requests)
        retrieval = retrieval_only(root, cases, rounds=200)

    result = {
        "requests_per_pass": args.requests,
        "machine": {"cpus": os.cpu_count()},
        "cheap_first": report("As contracted (cheap-first routing, app default)", routed, routed_stream, retrieval),
        "local_model": report(f"Every answer from the local model (app {args.model_app})", pinned, pinned_stream, None),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
