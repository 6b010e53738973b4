"""A run's results: per-case scores, aggregates overall and per tag, the gate, JSON."""

from __future__ import annotations

import json
import secrets
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.evals.runner import CaseRun
from keel.evals.scoring import CaseScore, Similarity, score_case
from keel.evals.suite import LoadedSuite

__all__ = ["RunReport", "build_report", "load_report"]

_SUM = {"retrieval.acl_violations"}


@dataclass(kw_only=True)
class RunReport:
    """Everything about one run, as saved to JSON."""

    run_id: str
    suite: str
    suite_path: str
    target: str
    started_at: float
    seconds: float
    k: int
    cases: list[dict[str, Any]]
    aggregate: dict[str, float | None]
    by_tag: dict[str, dict[str, float | None]]
    thresholds: list[dict[str, Any]]
    stages: dict[str, int]
    gate_passed: bool
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)

    def save(self, path: Path) -> None:
        """Write the JSON file (creating folders)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")


def load_report(path: Path) -> RunReport:
    """Read a saved run."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return RunReport(**data)


def build_report(
    loaded: LoadedSuite,
    runs: list[CaseRun],
    *,
    target: str,
    started_at: float,
    similarity: Similarity | None,
) -> RunReport:
    """Score every case, aggregate, and apply the suite's thresholds."""
    suite = loaded.suite
    cases: list[dict[str, Any]] = []
    scores: list[tuple[CaseRun, CaseScore]] = []
    for run in runs:
        score = score_case(run.case, run.asker, run.observation, k=suite.k, similarity=similarity)
        scores.append((run, score))
        obs = run.observation
        cases.append(
            {
                "id": run.case.id,
                "question": run.case.question,
                "asker": run.asker.id,
                "tags": run.case.tags,
                "passed": score.passed,
                "stage": score.stage,
                "failures": score.failures,
                "metrics": score.metrics,
                "request_id": obs.request_id,
                "mode": obs.mode,
                "answer": obs.answer[:500],
                "cited": [p.path for p in obs.cited],
                "retrieved": [p.path for p in obs.retrieved][: suite.k],
                "model": obs.model,
                "strategy": obs.strategy,
                "cache": obs.cache,
                "latency_ms": round(obs.latency_ms, 2),
                "tokens": obs.prompt_tokens + obs.completion_tokens,
                "cost_usd": obs.cost_usd,
                "degraded": obs.degraded,
                "error": obs.error,
            }
        )
    aggregate = _aggregate(cases)
    tags = sorted({t for c in cases for t in c["tags"]})
    by_tag = {tag: _aggregate([c for c in cases if tag in c["tags"]]) for tag in tags}
    thresholds = []
    for metric, bound in suite.thresholds.items():
        value = aggregate.get(metric)
        thresholds.append(
            {"metric": metric, "min": bound.min, "max": bound.max, "value": value, "ok": not bound.breached_by(value)}
        )
    stages: dict[str, int] = {}
    for c in cases:
        if c["stage"]:
            stages[c["stage"]] = stages.get(c["stage"], 0) + 1
    return RunReport(
        run_id=time.strftime("%Y%m%d-%H%M%S", time.gmtime(started_at)) + "-" + secrets.token_hex(3),
        suite=suite.name,
        suite_path=str(loaded.path),
        target=target,
        started_at=started_at,
        seconds=round(time.time() - started_at, 2),
        k=suite.k,
        cases=cases,
        aggregate=aggregate,
        by_tag=by_tag,
        thresholds=thresholds,
        stages=stages,
        gate_passed=all(t["ok"] for t in thresholds),
    )


def _aggregate(cases: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    names = sorted({m for c in cases for m in c["metrics"]})
    for name in names:
        values = [c["metrics"][name] for c in cases if c["metrics"].get(name) is not None]
        if name in _SUM:
            out[name] = float(sum(values))
        else:
            out[name] = statistics.fmean(values) if values else None
    latencies = sorted(c["latency_ms"] for c in cases)
    out["ops.latency_p50_ms"] = _percentile(latencies, 50)
    out["ops.latency_p95_ms"] = _percentile(latencies, 95)
    out["ops.cost_per_case_usd"] = statistics.fmean([c["cost_usd"] for c in cases]) if cases else None
    out["ops.tokens_per_case"] = statistics.fmean([c["tokens"] for c in cases]) if cases else None
    out["ops.cache_hit_rate"] = (
        sum(1 for c in cases if c["cache"] in ("exact", "semantic")) / len(cases) if cases else None
    )
    out["cases.pass_rate"] = sum(1 for c in cases if c["passed"]) / len(cases) if cases else None
    out["cases.count"] = float(len(cases))
    return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)
