"""The promotion gate: a candidate release must do at least as well as the current one on the eval suite.

Both releases answer the same suite in the same process (same index, same models,
caches not shared between them: the cache scope names the prompt and model).
The candidate is refused when it breaches one of the suite's thresholds, or when a
quality metric drops significantly against the current release (its bootstrap 95%
interval lies below zero; see :func:`keel.evals.compare.compare_runs`). Cases that
flip from pass to fail are listed, but a flip alone is not a regression: a model
sampling at a non-zero temperature flips a few cases between two runs of one release.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.audit import AuditEvent
from keel.contract import Release
from keel.errors import GateFailed, InvalidRequest, NotFound
from keel.evals.compare import Comparison, compare_runs
from keel.evals.report import RunReport, build_report
from keel.evals.runner import Progress, embedding_similarity, run_cases
from keel.evals.suite import LoadedSuite, load_suite
from keel.releases.registry import ReleaseState
from keel.runtime import Runtime

__all__ = ["DEFAULT_GATE_SUITE", "HIGHER_IS_BETTER", "GateResult", "gate_release", "promote_release"]

DEFAULT_GATE_SUITE = "evals/core.yaml"

HIGHER_IS_BETTER = (
    "cases.pass_rate",
    "retrieval.recall@k",
    "retrieval.mrr",
    "retrieval.ndcg@10",
    "generation.correctness",
    "generation.groundedness",
    "generation.citation_precision",
    "generation.citation_recall",
    "generation.mode_accuracy",
    "generation.policy_compliance",
)
"""Metrics whose significant drop is a regression."""


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """The candidate against the current release on one suite."""

    app: str
    current: str
    candidate: str
    current_report: RunReport
    candidate_report: RunReport
    comparison: Comparison
    regressions: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether the candidate may be promoted without forcing."""
        return not self.regressions

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the summary an audit record keeps)."""
        return {
            "app": self.app,
            "current": self.current,
            "candidate": self.candidate,
            "suite": self.candidate_report.suite,
            "passed": self.passed,
            "regressions": self.regressions,
            "current_run": self.current_report.run_id,
            "candidate_run": self.candidate_report.run_id,
            "current_gate_passed": self.current_report.gate_passed,
            "candidate_gate_passed": self.candidate_report.gate_passed,
        }


async def gate_release(
    runtime: Runtime,
    loaded: LoadedSuite,
    *,
    app: str,
    candidate: Release,
    concurrency: int = 2,
    progress: Progress | None = None,
) -> GateResult:
    """Run the suite on the app's current release and on ``candidate``, and judge the candidate."""
    state = runtime.releases.state(app)
    target_app = runtime.contract.app(app)
    current = runtime.releases.release(target_app, state.current)
    cases = list(loaded.suite.cases)
    similarity = embedding_similarity(runtime.embedder)
    reports = []
    for release in (current, candidate):
        started = time.time()
        runs = await run_cases(
            loaded, cases, runtime=runtime, concurrency=concurrency, progress=progress, release=release
        )
        reports.append(
            build_report(
                loaded, runs, target=f"release {release.name} ({app})", started_at=started, similarity=similarity
            )
        )
    current_report, candidate_report = reports
    comparison = compare_runs(current_report, candidate_report)
    regressions = [f"threshold: {t['metric']} = {t['value']}" for t in candidate_report.thresholds if not t["ok"]]
    regressions += [
        f"{d.metric} fell from {d.a:.3f} to {d.b:.3f} (95% interval {d.low:+.3f} to {d.high:+.3f})"
        for d in comparison.deltas
        if d.metric in HIGHER_IS_BETTER and d.significant and d.delta < 0
    ]
    return GateResult(
        app=app,
        current=state.current or "pins",
        candidate=candidate.name,
        current_report=current_report,
        candidate_report=candidate_report,
        comparison=comparison,
        regressions=regressions,
    )


async def promote_release(
    runtime: Runtime,
    *,
    app: str,
    candidate: str,
    actor: str,
    suite_path: Path | None = None,
    force_reason: str | None = None,
    concurrency: int = 2,
    progress: Progress | None = None,
) -> tuple[ReleaseState, GateResult]:
    """Gate ``candidate`` against the app's current release, then promote it.

    A candidate that fails the gate is refused with :class:`GateFailed` (and the
    refusal audited), unless ``force_reason`` says why it ships anyway: the promotion's
    audit record then carries the reason and the regressions it overrode.
    """
    target = runtime.contract.app(app) if app in {a.name for a in runtime.contract.apps} else None
    if target is None:
        raise NotFound(f"No app {app!r} in the contract; declared: {', '.join(a.name for a in runtime.contract.apps)}.")
    release = runtime.releases.release(target, candidate)
    if force_reason is not None and not force_reason.strip():
        raise InvalidRequest("Forcing a promotion needs a reason (--reason).", code="invalid_parameter")
    path = suite_path or runtime.project.root / (runtime.contract.rollout.gate_suite or DEFAULT_GATE_SUITE)
    loaded = load_suite(path)
    result = await gate_release(runtime, loaded, app=app, candidate=release, concurrency=concurrency, progress=progress)
    if not result.passed and force_reason is None:
        await asyncio.to_thread(
            runtime.audit.record_now,
            AuditEvent(action="release.promote_refused", actor=actor, tenant="*", subject=app, data=result.to_dict()),
        )
        raise GateFailed(
            f"Release {candidate!r} regressed against {result.current!r} on {loaded.suite.name}: "
            + "; ".join(result.regressions)
            + ". Fix it, or force with a reason."
        )
    data: dict[str, Any] = {"gate": result.to_dict()}
    if force_reason is not None:
        data["forced"] = {"reason": force_reason, "overrode": result.regressions}
    state = await asyncio.to_thread(runtime.releases.promote, app, candidate, actor=actor, data=data)
    return state, result
