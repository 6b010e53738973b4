"""Comparing two runs: metric deltas with bootstrap confidence intervals, and per-case flips.

Deltas are over the cases both runs share (paired by case id): the mean of B minus the
mean of A, with a 95% interval from resampling those cases with replacement.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from keel.evals.report import RunReport

__all__ = ["Comparison", "MetricDelta", "compare_runs"]

RESAMPLES = 2000


@dataclass(frozen=True, kw_only=True)
class MetricDelta:
    """One metric's change from A to B."""

    metric: str
    cases: int
    a: float
    b: float
    delta: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """Whether the 95% interval excludes zero."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Deltas and flips."""

    a: str
    b: str
    deltas: list[MetricDelta]
    pass_to_fail: list[str]
    fail_to_pass: list[str]
    only_in_a: list[str]
    only_in_b: list[str]

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "a": self.a,
            "b": self.b,
            "deltas": [d.__dict__ | {"significant": d.significant} for d in self.deltas],
            "pass_to_fail": self.pass_to_fail,
            "fail_to_pass": self.fail_to_pass,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
        }


def compare_runs(a: RunReport, b: RunReport, *, seed: int = 0) -> Comparison:
    """Compare run ``b`` with baseline ``a``."""
    cases_a = {c["id"]: c for c in a.cases}
    cases_b = {c["id"]: c for c in b.cases}
    shared = sorted(set(cases_a) & set(cases_b))
    rng = random.Random(seed)
    metrics = sorted({m for c in [*a.cases, *b.cases] for m in c["metrics"]} | {"cases.passed"})
    deltas = []
    for metric in metrics:
        pairs = [
            (va, vb)
            for cid in shared
            if (va := _value(cases_a[cid], metric)) is not None and (vb := _value(cases_b[cid], metric)) is not None
        ]
        if not pairs:
            continue
        diffs = [vb - va for va, vb in pairs]
        mean_a = sum(va for va, _ in pairs) / len(pairs)
        mean_b = sum(vb for _, vb in pairs) / len(pairs)
        boots = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(RESAMPLES))
        deltas.append(
            MetricDelta(
                metric=metric,
                cases=len(pairs),
                a=mean_a,
                b=mean_b,
                delta=mean_b - mean_a,
                low=boots[int(0.025 * RESAMPLES)],
                high=boots[int(0.975 * RESAMPLES) - 1],
            )
        )
    return Comparison(
        a=a.run_id,
        b=b.run_id,
        deltas=deltas,
        pass_to_fail=[cid for cid in shared if cases_a[cid]["passed"] and not cases_b[cid]["passed"]],
        fail_to_pass=[cid for cid in shared if not cases_a[cid]["passed"] and cases_b[cid]["passed"]],
        only_in_a=sorted(set(cases_a) - set(cases_b)),
        only_in_b=sorted(set(cases_b) - set(cases_a)),
    )


def _value(case: dict[str, Any], metric: str) -> float | None:
    if metric == "cases.passed":
        return 1.0 if case["passed"] else 0.0
    value = case["metrics"].get(metric)
    return float(value) if value is not None else None
