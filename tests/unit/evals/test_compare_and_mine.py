"""Comparing runs (deltas with intervals, flips) and mining cases from traces."""

from __future__ import annotations

from typing import Any

from keel.evals.compare import compare_runs
from keel.evals.mine import mine_cases
from keel.evals.report import RunReport
from keel.tracing import TraceRecord


def report(run_id: str, results: dict[str, tuple[bool, float]]) -> RunReport:
    cases = [
        {"id": cid, "passed": passed, "metrics": {"generation.correctness": value}, "tags": []}
        for cid, (passed, value) in results.items()
    ]
    return RunReport(
        run_id=run_id,
        suite="s",
        suite_path="s.yaml",
        target="t",
        started_at=0,
        seconds=1,
        k=5,
        cases=cases,
        aggregate={},
        by_tag={},
        thresholds=[],
        stages={},
        gate_passed=True,
    )


def test_a_clear_regression_has_an_interval_below_zero_and_lists_flips() -> None:
    a = report("A", {f"c{i}": (True, 1.0) for i in range(40)})
    b = report("B", {f"c{i}": (i >= 10, 0.0 if i < 10 else 1.0) for i in range(40)} | {"new": (True, 1.0)})
    result = compare_runs(a, b)
    correctness = next(d for d in result.deltas if d.metric == "generation.correctness")
    assert correctness.delta == -0.25 and correctness.high < 0 and correctness.significant
    assert result.pass_to_fail == [f"c{i}" for i in sorted(range(10), key=str)] or set(result.pass_to_fail) == {
        f"c{i}" for i in range(10)
    }
    assert result.fail_to_pass == [] and result.only_in_b == ["new"]


def test_no_change_is_not_significant() -> None:
    a = report("A", {f"c{i}": (True, float(i % 2)) for i in range(30)})
    result = compare_runs(a, a)
    assert all(not d.significant and d.delta == 0 for d in result.deltas)


def record(rid: str, question: str, *, principal: str = "hana", status: int = 200) -> TraceRecord:
    data: dict[str, Any] = {
        "request": {"question": question},
        "response": {
            "mode": "answer",
            "answer": "Call +44 20 7946 0958 [1]",
            "citations": [{"source": "hr/bands.md"}, {"source": "hr/bands.md"}],
        },
    }
    return TraceRecord(
        request_id=rid,
        created_at=0,
        principal_id=principal,
        tenant="t",
        app="default",
        endpoint="ask",
        mode="answer",
        status=status,
        latency_ms=1,
        data=data,
    )


def test_mining_deduplicates_redacts_and_proposes_expectations() -> None:
    records = [
        record("req_1", "What is the band? mail me at a.b@example.com"),
        record("req_2", "what is the band?  mail me at a.b@example.com"),
        record("req_3", "Broken", status=500),
        record("req_4", "Anonymous", principal="-"),
    ]
    cases = mine_cases(records)
    assert len(cases) == 1
    case = cases[0]
    assert "a.b@example.com" not in case["question"] and "[REDACTED:email]" in case["question"]
    assert "7946" not in case["observed_answer"]
    assert case["expect"]["citations"] == ["hr/bands.md"] and case["asker"] == "hana" and case["tags"] == ["mined"]
