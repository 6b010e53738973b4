"""The evaluations pages: saved runs listed, one run with its failing cases linked to traces, two compared."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.errors import InvalidRequest
from keel.evals.report import RunReport
from keel.server.console.evals_page import check_run_id
from tests.unit.server.console.pages_app import Console, console, sent_to_sign_in


def _case(case_id: str, passed: bool, *, request_id: str | None, recall: float, tags: list[str]) -> dict[str, Any]:
    return {
        "id": case_id,
        "question": f"question of {case_id}?",
        "asker": "pat",
        "tags": tags,
        "passed": passed,
        "stage": None if passed else "retrieval",
        "failures": [] if passed else [f"{case_id}: expected document not retrieved"],
        "metrics": {"retrieval.recall@k": recall},
        "request_id": request_id,
        "latency_ms": 12.0,
        "cost_usd": 0.0,
        "tokens": 10,
        "cache": "miss",
    }


def _report(run_id: str, cases: list[dict[str, Any]], *, started_at: float) -> RunReport:
    passed = sum(1 for c in cases if c["passed"]) / len(cases)
    recall = sum(c["metrics"]["retrieval.recall@k"] for c in cases) / len(cases)
    return RunReport(
        run_id=run_id,
        suite="smoke",
        suite_path="evals/smoke.yaml",
        target="in process",
        started_at=started_at,
        seconds=1.5,
        k=5,
        cases=cases,
        aggregate={"cases.pass_rate": passed, "retrieval.recall@k": recall, "cases.count": float(len(cases))},
        by_tag={"hr": {"cases.pass_rate": passed, "cases.count": float(len(cases))}},
        thresholds=[{"metric": "cases.pass_rate", "min": 0.9, "max": None, "value": passed, "ok": passed >= 0.9}],
        stages={"retrieval": sum(1 for c in cases if not c["passed"])},
        gate_passed=passed >= 0.9,
    )


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Console]:
    with console(tmp_path) as c:
        folder = c.runtime.project.data_dir / "evals"
        now = time.time()
        _report(
            "20260101-000000-aaaaaa",
            [_case(f"c{i}", True, request_id=f"req-a{i}", recall=1.0, tags=["hr"]) for i in range(6)],
            started_at=now - 3600,
        ).save(folder / "20260101-000000-aaaaaa.json")
        _report(
            "20260102-000000-bbbbbb",
            [
                _case("c0", False, request_id="req-b0", recall=0.0, tags=["hr"]),
                _case("c1", False, request_id=None, recall=0.0, tags=["hr"]),
                *(_case(f"c{i}", True, request_id=f"req-b{i}", recall=1.0, tags=["hr"]) for i in range(2, 6)),
            ],
            started_at=now,
        ).save(folder / "20260102-000000-bbbbbb.json")
        # a valid report outside the evals folder, which no run id may reach
        _report("secret", [_case("s", True, request_id=None, recall=1.0, tags=[])], started_at=now).save(
            c.runtime.project.data_dir / "secret.json"
        )
        yield c


def test_runs_are_listed_newest_first_for_reviewers_and_admins(app: Console) -> None:
    for who in ("reviewer", "admin"):
        page = app.client(who).get("/console/evals")
        assert page.status_code == 200
        assert page.text.index("20260102-000000-bbbbbb") < page.text.index("20260101-000000-aaaaaa")
        assert "67%" in page.text and "100%" in page.text  # pass rates
        assert 'href="/console/evals/20260102-000000-bbbbbb"' in page.text
        assert 'action="/console/evals/compare"' in page.text


def test_a_user_key_is_sent_to_sign_in(app: Console) -> None:
    client = app.client("user")
    for path in ("/console/evals", "/console/evals/20260101-000000-aaaaaa", "/console/evals/compare?a=x&b=y"):
        assert sent_to_sign_in(client.get(path, follow_redirects=False)), path
    assert sent_to_sign_in(app.client().get("/console/evals", follow_redirects=False))


def test_the_run_page_shows_the_gate_and_links_failing_cases_to_their_traces(app: Console) -> None:
    page = app.client("reviewer").get("/console/evals/20260102-000000-bbbbbb")
    assert page.status_code == 200
    assert "breached" in page.text and "Failing cases (2)" in page.text
    assert '<a href="/console/requests/req-b0">req-b0</a>' in page.text
    assert "/console/requests/req-b2" not in page.text  # passing cases are not listed
    assert "c1: expected document not retrieved" in page.text  # a failing case without a request id, unlinked
    assert "retrieval" in page.text  # the stage at fault
    assert 'role="img" aria-label="Pass rate by tag: hr' in page.text


def test_two_runs_compare_with_intervals_and_flipped_cases(app: Console) -> None:
    page = app.client("reviewer").get("/console/evals/compare?a=20260101-000000-aaaaaa&b=20260102-000000-bbbbbb")
    assert page.status_code == 200
    assert "retrieval.recall@k" in page.text and "95% interval" in page.text
    assert "Passed in A, failing in B (2):</strong> c0, c1" in page.text


def test_run_ids_that_are_not_plain_file_names_are_refused(app: Console) -> None:
    client = app.client("reviewer")
    for query in ("a=../secret&b=20260101-000000-aaaaaa", "a=20260101-000000-aaaaaa&b=..%2Fsecret", "a=&b="):
        refused = client.get(f"/console/evals/compare?{query}")
        assert refused.status_code == 400, query
        assert refused.json()["error"]["code"] == "invalid_parameter"
    assert client.get("/console/evals/..secret").status_code == 400
    assert client.get("/console/evals/nope").status_code == 404
    for bad in ("../secret", "..", ".hidden", "a/b", "a\\b", "", "x" * 200):
        with pytest.raises(InvalidRequest):
            check_run_id(bad)
    assert check_run_id("20260101-000000-aaaaaa.v2_x") == "20260101-000000-aaaaaa.v2_x"
