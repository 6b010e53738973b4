"""Replay a mixed workload through cheap-first routing and compare with "always the largest model".

The workload (default 520 requests) is built from the sample questions: every case
asked by a principal allowed to read its document and by one who is not, repeats of
earlier questions, and paraphrases of them, shuffled with a fixed seed. It runs in
process through the full pipeline on a copy of the sample project, twice:

* as contracted: caches, the extractive tier, the local model, budgets;
* baseline: every question pinned to the largest configured language model, caches
  off (what a plain gateway in front of one model does); each distinct question is
  run once and its cost applied to every request asking it.

Printed: cache hit rates (exact, semantic), cost per request for both, p50/p95
latency, and the share of requests per tier and per mode; written as JSON.

    .venv/bin/python benchmarks/routing_replay.py [--requests 520] [--json benchmarks/results/routing_replay.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from common import bar, percentile

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "acme"
FOLDER_GROUPS = {"all-staff": {"everyone"}, "deals": {"executives", "legal"}}

PARAPHRASES = [
    "Could you tell me: {q}",
    "{q} Thanks!",
    "Quick question - {lower}",
    "Please let me know: {q}",
]


def build_workload(
    cases: list[dict[str, Any]], principals: list[dict[str, Any]], size: int, seed: int
) -> list[dict[str, str]]:
    """Originals (insider and outsider), then repeats and paraphrases of earlier requests, shuffled."""
    rng = random.Random(seed)
    users = [p for p in principals if "admin" not in p.get("roles", [])]
    originals: list[dict[str, str]] = []
    for case in cases:
        doc = case.get("doc")
        allowed = FOLDER_GROUPS.get(doc.split("/")[0], {doc.split("/")[0]}) if doc else set()
        insiders = [p for p in users if allowed & {*p.get("groups", []), "everyone"}]
        outsiders = [p for p in users if p not in insiders]
        for pool in (insiders, outsiders):
            if pool:
                who = rng.choice(pool)
                originals.append(
                    {
                        "principal": who["id"],
                        "question": case["question"],
                        "origin": case["question"],
                        "kind": "original",
                    }
                )
    workload = list(originals)
    while len(workload) < size:
        base = rng.choice(originals)
        if rng.random() < 0.5:
            workload.append({**base, "kind": "repeat"})
        else:
            template = rng.choice(PARAPHRASES)
            q = base["question"]
            text = template.format(q=q, lower=q[0].lower() + q[1:])
            workload.append({**base, "question": text, "kind": "paraphrase"})
    head, tail = workload[: len(originals)], workload[len(originals) :]
    rng.shuffle(head)
    rng.shuffle(tail)
    return head + tail


async def run(root: Path, workload: list[dict[str, str]], *, baseline_model: str | None) -> list[dict[str, Any]]:
    """Each request through the pipeline; with ``baseline_model``, pinned to it with caches off."""
    from keel.project import Project
    from keel.runtime import Runtime
    from keel.settings import Settings

    project = Project.open(Settings(project=root))
    if baseline_model is not None:
        data = yaml.safe_load((root / "keel.yaml").read_text(encoding="utf-8"))
        data["routing"]["cache"] = {"exact": False, "semantic": False}
        data.setdefault("cost", {})["budgets"] = []
        for app in data["apps"]:
            app.setdefault("pins", {})["model"] = baseline_model
        (root / "keel.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        project = Project.open(Settings(project=root))
    runtime = Runtime(project)
    await runtime.warm_up()
    principals = yaml.safe_load((root / "principals.yaml").read_text(encoding="utf-8"))
    keys = {
        p["id"]: runtime.keys.create(
            principal_id=p["id"],
            tenant=principals["tenant"],
            groups=p.get("groups", []),
            roles=p.get("roles", ["user"]),
        ).secret
        for p in principals["principals"]
    }
    out = []
    try:
        for i, item in enumerate(workload):
            ctx = runtime.new_context(question=item["question"], credential=keys[item["principal"]], endpoint="ask")
            started = time.perf_counter()
            await runtime.pipeline.run(ctx)
            elapsed = (time.perf_counter() - started) * 1000
            if ctx.cache in ("exact", "semantic"):
                tier = f"cache ({ctx.cache})"
            elif ctx.mode in ("answer", "sources_only") and ctx.model:
                tier = runtime.contract.model(ctx.model).tier
            else:
                tier = "no model call"
            out.append(
                {
                    **item,
                    "mode": ctx.mode,
                    "cache": ctx.cache,
                    "model": ctx.model if ctx.cache in ("off", "miss") else None,
                    "tier": tier,
                    "cost_usd": ctx.cost_usd,
                    "latency_ms": elapsed,
                }
            )
            if (i + 1) % 50 == 0 or i + 1 == len(workload):
                print(f"  {i + 1}/{len(workload)}", flush=True)
    finally:
        await runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=520)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "routing_replay.json")
    args = parser.parse_args()

    from keel.contract import load_contract
    from keel.ingest.ingestor import Ingestor
    from keel.project import Project
    from keel.retrieval.embedder import MiniLMEmbedder
    from keel.retrieval.versions import IndexStore
    from keel.settings import Settings

    with tempfile.TemporaryDirectory(prefix="keel-replay-") as tmp:
        root = Path(tmp) / "acme"
        shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(".keel"))
        contract = load_contract(root / "keel.yaml")
        embedder = MiniLMEmbedder(cache_dir=root / ".keel" / "cache")
        db = Project.open(Settings(project=root)).open_database()
        Ingestor(
            contract=contract,
            docs_dir=root / "docs",
            db=db,
            index_store=IndexStore(root / ".keel" / "index"),
            embedder=embedder,
        ).run()
        db.close()
        cases = yaml.safe_load((root / "evals" / "questions.yaml").read_text(encoding="utf-8"))["cases"]
        principals = yaml.safe_load((root / "principals.yaml").read_text(encoding="utf-8"))["principals"]
        workload = build_workload(cases, principals, args.requests, args.seed)
        largest = max(
            (m for m in contract.models if m.provider != "extractive"),
            key=lambda m: (m.price.output_per_mtok, m.price.input_per_mtok),
        )
        print(f"workload: {len(workload)} requests ({Counter(w['kind'] for w in workload)})")
        print("as contracted:")
        routed = asyncio.run(run(root, workload, baseline_model=None))
        distinct = {}
        for w in workload:
            distinct.setdefault((w["origin"], w["principal"]), {**w, "question": w["origin"], "kind": "original"})
        print(f"baseline, always {largest.name} ({len(distinct)} distinct questions):")
        base_root = Path(tmp) / "baseline"
        shutil.copytree(root, base_root)
        baseline = asyncio.run(run(base_root, list(distinct.values()), baseline_model=largest.name))
    base_cost = {(b["origin"], b["principal"]): b["cost_usd"] for b in baseline}
    base_latency = [b["latency_ms"] for b in baseline]
    n = len(routed)
    cost = sum(r["cost_usd"] for r in routed)
    baseline_total = sum(base_cost[(r["origin"], r["principal"])] for r in routed)
    caches = Counter(r["cache"] for r in routed)
    latencies = [r["latency_ms"] for r in routed]
    tiers = Counter(r["tier"] for r in routed)
    modes = Counter(r["mode"] for r in routed)
    print(f"\n{'measure':<44}{'value':>14}")
    print(f"{'requests':<44}{n:>14}")
    print(f"{'exact cache hits':<44}{caches['exact'] / n:>13.1%}  {bar(caches['exact'] / n)}")
    print(f"{'semantic cache hits':<44}{caches['semantic'] / n:>13.1%}  {bar(caches['semantic'] / n)}")
    print(f"{'cost per request, cheap-first (USD)':<44}{cost / n:>14.8f}")
    print(f"{'cost per request, always ' + largest.name + ' (USD)':<44}{baseline_total / n:>14.8f}")
    ratio = cost / baseline_total if baseline_total else float("nan")
    print(f"{'cost ratio (cheap-first / baseline)':<44}{ratio:>14.3f}  {bar(min(ratio, 1.0))}")
    for label, values in (("cheap-first", latencies), ("baseline", base_latency)):
        figures = f"{percentile(values, 50):>7.0f} /{percentile(values, 95):>5.0f}"
        print(f"{'latency p50 / p95, ' + label + ' (ms)':<44}{figures}")
    print("\nshare of requests by what served them:")
    for tier, count in sorted(tiers.items(), key=lambda kv: -kv[1]):
        print(f"  {tier:<14}{count / n:>7.1%}  {bar(count / n)}")
    print("share of requests by mode:")
    for mode, count in sorted(modes.items(), key=lambda kv: -kv[1]):
        print(f"  {mode:<14}{count / n:>7.1%}  {bar(count / n)}")
    result = {
        "requests": n,
        "workload": dict(Counter(w["kind"] for w in workload)),
        "cache_hit_rate": {"exact": caches["exact"] / n, "semantic": caches["semantic"] / n},
        "cost_per_request_usd": {"cheap_first": cost / n, f"always_{largest.name}": baseline_total / n},
        "cost_ratio": ratio,
        "latency_ms": {
            "cheap_first": {
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "mean": statistics.fmean(latencies),
            },
            "baseline": {"p50": percentile(base_latency, 50), "p95": percentile(base_latency, 95)},
        },
        "tiers": {k: v / n for k, v in tiers.items()},
        "modes": {k: v / n for k, v in modes.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
