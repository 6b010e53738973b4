"""The canary verdict compares the candidate with the current release; shadow pairs are summarised."""

from __future__ import annotations

import json
import time
from pathlib import Path

from keel.contract import CanaryPolicy
from keel.releases.canary import judge_canary
from keel.releases.registry import ReleaseState
from keel.releases.shadow import citation_overlap, shadow_report
from keel.store import Database
from tests.support.database import database_at


def _trace(
    db: Database,
    n: int,
    *,
    release: str,
    status: int = 200,
    latency: float = 50.0,
    mode: str = "answer",
    cost: float = 0.0,
) -> None:
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status, latency_ms,"
            " data_json, release) VALUES (?, ?, 'p', 't', 'default', 'ask', ?, ?, ?, ?, ?)",
            (
                f"req_{release}_{n}_{time.perf_counter_ns()}",
                time.time(),
                mode,
                status,
                latency,
                json.dumps({"response": {"cost_usd": cost}}),
                release,
            ),
        )


STATE = ReleaseState(app="default", current="r1", candidate="r2", stage="canary", share=0.5, started_at=0.0)
POLICY = CanaryPolicy(min_requests=10)


def test_a_healthy_canary_is_kept(tmp_path: Path) -> None:
    db = database_at(tmp_path / "keel.db")
    for n in range(20):
        _trace(db, n, release="r1")
        _trace(db, n, release="r2")
    verdict = judge_canary(db, STATE, POLICY)
    assert verdict is not None and verdict.enough_traffic and not verdict.roll_back


def test_a_failing_or_slow_canary_is_rolled_back_naming_the_breach(tmp_path: Path) -> None:
    db = database_at(tmp_path / "keel.db")
    for n in range(20):
        _trace(db, n, release="r1", latency=40)
        _trace(db, n, release="r2", status=502 if n % 4 == 0 else 200, latency=400)
    verdict = judge_canary(db, STATE, POLICY)
    assert verdict is not None and verdict.roll_back
    assert any("error rate" in b for b in verdict.breaches) and any("p95 latency" in b for b in verdict.breaches)


def test_no_verdict_before_enough_candidate_traffic(tmp_path: Path) -> None:
    db = database_at(tmp_path / "keel.db")
    for n in range(5):
        _trace(db, n, release="r2", status=500)
    verdict = judge_canary(db, STATE, POLICY)
    assert verdict is not None and verdict.breaches and not verdict.roll_back
    assert judge_canary(db, ReleaseState(app="default", current="r1"), POLICY) is None


def test_citation_overlap_is_jaccard_and_full_when_both_cite_nothing() -> None:
    assert citation_overlap(set(), set()) == 1.0
    assert citation_overlap({"a", "b"}, {"b", "c"}) == 1 / 3
    assert citation_overlap({"a"}, set()) == 0.0


def test_the_shadow_report_lists_the_worst_disagreements_first(tmp_path: Path) -> None:
    db = database_at(tmp_path / "keel.db")
    rows = [
        ("req_1", {"mode_agree": True, "similarity": 0.95, "citation_overlap": 1.0, "error": None}),
        ("req_2", {"mode_agree": False, "similarity": 0.2, "citation_overlap": 0.0, "error": None}),
        ("req_3", {"mode_agree": True, "similarity": 0.5, "citation_overlap": 0.5, "error": None}),
    ]
    with db.transaction() as conn:
        for rid, data in rows:
            full = {
                "latency_current_ms": 10.0,
                "latency_candidate_ms": 30.0,
                "cost_current_usd": 0.0,
                "cost_candidate_usd": 0.001,
                "question": "q",
                **data,
            }
            conn.execute(
                "INSERT INTO shadow_pairs (request_id, created_at, app, current, candidate, data_json)"
                " VALUES (?, ?, 'default', 'r1', 'r2', ?)",
                (rid, time.time(), json.dumps(full)),
            )
    report = shadow_report(db, app="default", candidate="r2", worst=2)
    assert report.pairs == 3 and report.errors == 0
    assert report.mode_agreement == round(2 / 3, 6)
    assert [d["request_id"] for d in report.disagreements] == ["req_2", "req_3"]
    assert report.latency_candidate_p50_ms == 30.0
