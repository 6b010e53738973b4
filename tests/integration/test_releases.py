"""Releases end to end: rollback restores the exact previous triple, the gate refuses a regressing candidate,
the guard in `keel serve` rolls back a failing canary, a shadow never changes a response, and the admin API."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import RunningServer, auth, ingest, start_server, stop_server
from tests.support.fault_upstream import FaultUpstream

CONTRACT = """
cost: {{max_usd_per_request: 1.0}}
models:
  - {{name: extractive, provider: extractive, tier: extractive}}
  - name: good
    provider: openai_compatible
    base_url: {good}
    tier: small
    timeouts: {{connect_s: 1, first_token_s: 1, stall_s: 0.5, total_s: 3}}
    retries: {{max_attempts: 1}}
    price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
  - name: bad
    provider: openai_compatible
    base_url: {bad}
    tier: small
    timeouts: {{connect_s: 1, first_token_s: 1, stall_s: 0.5, total_s: 3}}
    retries: {{max_attempts: 1}}
    price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
routing:
  cache: {{exact: false, semantic: false}}
sources:
  - {{name: open, path: open, groups: [everyone]}}
releases:
  - {{name: r1, model: extractive, prompt: answer@1, index: 1}}
  - {{name: r2, model: good, prompt: answer@2, index: 2}}
  - {{name: old-index, model: extractive, prompt: answer@1, index: 1}}
  - {{name: steady, model: good}}
  - {{name: broken, model: bad}}
  - {{name: alt, model: extractive, prompt: answer@2}}
apps:
  - {{name: default, release: r1}}
  - {{name: gated, pins: {{model: extractive, prompt: answer@1}}}}
  - {{name: chat, retrieval: false, release: steady}}
  - {{name: mirror, pins: {{model: extractive}}}}
  - {{name: plain, retrieval: false, release: steady}}
rollout:
  gate_suite: evals/gate.yaml
  canary: {{min_requests: 5, window_minutes: 5, check_interval_s: 0.5}}
  shadow: {{max_in_flight: 8}}  # more than a test sends at once: no copy is dropped
"""

LEAVE = (
    "---\ntitle: Leave policy\n---\n# Leave policy\n\n"
    "Every employee is entitled to 31 days of paid annual leave per calendar year.\n\n"
    "## Carry-over\n\nUp to five unused days may be carried over until 31 March.\n"
)
TRAVEL = (
    "---\ntitle: Travel policy\n---\n# Travel policy\n\n"
    "Train travel is booked in second class for journeys under four hours.\n\n"
    "## Hotels\n\nHotel stays are reimbursed up to 140 euros per night in every city.\n"
)
PRINCIPALS = "tenant: t\nprincipals:\n  - {id: pat, groups: [], roles: [user]}\n"
SUITE_QUESTIONS = [
    ("train", "In which class is train travel booked for short journeys?", "travel"),
    ("hotel", "How much is reimbursed per night for a hotel stay?", "travel"),
    ("hotel-cap", "What is the hotel reimbursement limit per night?", "travel"),
    ("train-class", "Which train class do employees travel in under four hours?", "travel"),
    ("leave", "How many days of paid annual leave does every employee get?", "leave"),
]
SUITE = {
    "name": "gate",
    "principals": "../principals.yaml",
    "k": 3,
    "thresholds": {"retrieval.recall@k": {"min": 0.8}},
    "cases": [
        {
            "id": case,
            "question": question,
            "asker": "pat",
            "app": "gated",
            "expect": {"relevant": [{"doc": f"open/{doc}.md", "grade": 2}], "mode": "answer"},
        }
        for case, question, doc in SUITE_QUESTIONS
    ],
}
LEAVE_Q = "How many days of paid annual leave is every employee entitled to per calendar year?"
TRAVEL_Q = "How much are hotel stays reimbursed per night?"


def keel(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keel {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def audit_records(root: Path, action: str) -> list[dict[str, Any]]:
    out = keel(root, "audit", "export", "--action", action).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@dataclass(frozen=True, kw_only=True)
class Upstreams:
    good: FaultUpstream
    bad: FaultUpstream


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with FaultUpstream() as good, FaultUpstream() as bad:
        bad.state.mode = "error_500"
        yield Upstreams(good=good, bad=bad)


def build_project(root: Path, embedder: Any, upstreams: Upstreams) -> dict[str, str]:
    """Index v1 holds the leave policy only, v2 (active) adds the travel policy; returns keys by role."""
    from keel.identity import KeyStore
    from tests.support.database import database_at

    (root / "docs" / "open").mkdir(parents=True)
    (root / "evals").mkdir()
    contract = CONTRACT.format(good=upstreams.good.base_url, bad=upstreams.bad.base_url)
    (root / "keel.yaml").write_text(contract, encoding="utf-8")
    (root / "principals.yaml").write_text(PRINCIPALS, encoding="utf-8")
    (root / "evals" / "gate.yaml").write_text(yaml.safe_dump(SUITE, sort_keys=False), encoding="utf-8")
    (root / "docs" / "open" / "leave.md").write_text(LEAVE, encoding="utf-8")
    assert ingest(root, embedder).version == 1
    (root / "docs" / "open" / "travel.md").write_text(TRAVEL, encoding="utf-8")
    assert ingest(root, embedder).version == 2
    cache = root / ".keel" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for onnx in Path(embedder.cache_dir).glob("*.onnx"):
        shutil.copy2(onnx, cache / onnx.name)
    db = database_at(root / ".keel" / "keel.db")
    try:
        store = KeyStore(db)
        return {
            "user": store.create(principal_id="pat", tenant="t", groups=[], roles=["user"]).secret,
            "admin": store.create(principal_id="ops", tenant="t", groups=[], roles=["user", "admin"]).secret,
        }
    finally:
        db.close()


@dataclass(frozen=True, kw_only=True)
class Served:
    root: Path
    server: RunningServer
    keys: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedder: Any, upstreams: Upstreams) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("releases") / "proj"
    keys = build_project(root, embedder, upstreams)
    server = start_server(root, root.parent / "server.log")
    yield Served(root=root, server=server, keys=keys)
    stop_server(server)


def ask(s: Served, question: str, *, app: str = "default", key: str = "user") -> httpx.Response:
    return httpx.post(
        s.server.url + "/v1/ask", json={"question": question, "app": app}, headers=auth(s.keys[key]), timeout=60
    )


def trace_of(s: Served, request_id: str) -> dict[str, Any]:
    response = httpx.get(f"{s.server.url}/v1/traces/{request_id}", headers=auth(s.keys["user"]), timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def served_by(s: Served, question: str, *, app: str = "default") -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The release that served one request, the trace's ``release`` span and its response."""
    response = ask(s, question, app=app)
    assert response.status_code == 200, response.text
    trace = trace_of(s, response.json()["request_id"])
    span = next(x for x in trace["spans"] if x["name"] == "release")
    assert span["attributes"]["release"] == trace["response"]["release"]
    return trace["response"]["release"], span, trace["response"]


def admin(s: Served, method: str, path: str, *, key: str = "admin", **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method, s.server.url + "/v1/admin/releases" + path, headers=auth(s.keys[key]), timeout=120, **kwargs
    )


def app_state(s: Served, app: str) -> dict[str, Any]:
    body = admin(s, "GET", "").json()
    return next(a for a in body["apps"] if a["app"] == app)


def poll(check: Any, *, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def triple(span: dict[str, Any], response: dict[str, Any]) -> tuple[Any, ...]:
    """What a request was served with: (model, prompt, index) as the release pinned them and as served."""
    pinned = span["attributes"]
    return (
        pinned["model"],
        pinned["prompt"],
        pinned["index"],
        response["model"],
        response["prompt"],
        response["index_version"],
    )


def test_rollback_restores_the_exact_previous_release(served: Served) -> None:
    r1 = ("extractive", "answer@1", 1, "extractive", "answer@1", 1)
    release, span, response = served_by(served, LEAVE_Q)
    assert release == "r1" and triple(span, response) == r1

    keel(served.root, "release", "promote", "r2", "--force", "--reason", "new model", "--actor", "ops")
    assert poll(lambda: served_by(served, LEAVE_Q)[0] == "r2")
    release, span, response = served_by(served, LEAVE_Q)
    assert triple(span, response) == ("good", "answer@2", 2, "good", "answer@2", 2)
    assert span["decision"] == "current"

    keel(served.root, "release", "rollback", "--reason", "answers got worse", "--actor", "ops")
    assert poll(lambda: served_by(served, LEAVE_Q)[0] == "r1")
    for _ in range(3):
        release, span, response = served_by(served, LEAVE_Q)
        assert release == "r1" and triple(span, response) == r1
    state = app_state(served, "default")
    assert state["current"] == "r1" and state["candidate"] is None and state["history"] == []
    [record] = audit_records(served.root, "release.rollback")
    assert record["actor"] == "ops" and record["subject"] == "default" and record["tenant"] == "*"
    assert "answers got worse" in json.dumps(record["data"])


def test_promote_is_refused_on_a_regressing_candidate_unless_forced_with_a_reason(served: Served) -> None:
    refused = keel(served.root, "release", "promote", "old-index", "--app", "gated", check=False)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "gate_failed" in output and "recall@k" in output, output
    state = app_state(served, "gated")
    assert state["current"] == "" and state["history"] == []
    [record] = audit_records(served.root, "release.promote_refused")
    assert record["subject"] == "gated" and record["data"]["regressions"]
    assert any("recall@k" in r for r in record["data"]["regressions"])

    reason = "index 1 is what the auditors signed off"
    keel(served.root, "release", "promote", "old-index", "--app", "gated", "--force", "--reason", reason)
    state = app_state(served, "gated")
    assert state["current"] == "old-index" and state["previous"] == ""
    promoted = [r for r in audit_records(served.root, "release.promote") if r["subject"] == "gated"]
    assert len(promoted) == 1
    forced = promoted[0]["data"]["forced"]
    assert forced["reason"] == reason and any("recall@k" in r for r in forced["overrode"])


def test_the_guard_rolls_back_a_failing_canary(served: Served) -> None:
    assert served_by(served, "Say hello.", app="chat")[2]["model"] == "good"
    started = admin(served, "POST", "/chat/canary", json={"candidate": "broken", "share": 1.0})
    assert started.status_code == 200, started.text
    assert started.json()["stage"] == "canary"
    statuses = []
    for _ in range(8):
        statuses.append(ask(served, "Say hello.", app="chat").status_code)
        if app_state(served, "chat")["candidate"] is None:
            break
    assert 503 in statuses, statuses
    assert poll(lambda: app_state(served, "chat")["candidate"] is None, timeout=10)
    [record] = audit_records(served.root, "release.canary_rollback")
    assert record["actor"] == "canary-guard" and record["subject"] == "chat"
    assert record["data"]["candidate"] == "broken" and "error rate" in record["data"]["reason"]
    assert record["data"]["verdict"]["candidate_stats"]["error_rate"] > 0
    assert poll(lambda: ask(served, "Say hello.", app="chat").status_code == 200)
    for _ in range(3):
        assert served_by(served, "Say hello.", app="chat")[0] == "steady"
    assert app_state(served, "chat")["current"] == "steady"


def test_admin_api_checks_role_app_share_and_forced_reason(served: Served) -> None:
    listed = admin(served, "GET", "")
    assert listed.status_code == 200
    assert {r["name"] for r in listed.json()["releases"]} >= {"r1", "r2", "broken"}
    assert {a["app"] for a in listed.json()["apps"]} == {"default", "gated", "chat", "mirror", "plain"}

    forbidden = admin(served, "GET", "", key="user")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert (
        admin(served, "POST", "/chat/canary", key="user", json={"candidate": "broken", "share": 0.5}).status_code == 403
    )

    unknown = admin(served, "POST", "/nope/shadow", json={"candidate": "alt", "share": 0.5})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert admin(served, "POST", "/mirror/shadow", json={"candidate": "nope", "share": 0.5}).status_code == 404

    for share in (0, 1.5, -0.1):
        bad = admin(served, "POST", "/mirror/shadow", json={"candidate": "alt", "share": share})
        assert bad.status_code == 400, bad.text
        assert set(bad.json()["error"]) >= {"code", "message", "request_id"}
    extra = admin(served, "POST", "/mirror/shadow", json={"candidate": "alt", "share": 0.5, "stage": "x"})
    assert extra.status_code == 400

    no_reason = admin(served, "POST", "/mirror/promote", json={"candidate": "alt", "force": True})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["message"]
    blank = admin(served, "POST", "/mirror/promote", json={"candidate": "alt", "force": True, "reason": "  "})
    assert blank.status_code == 400
    assert app_state(served, "mirror")["current"] == ""

    shadow = admin(served, "POST", "/mirror/shadow", json={"candidate": "alt", "share": 0.5})
    assert shadow.status_code == 200 and shadow.json()["candidate"] == "alt"
    aborted = admin(served, "POST", "/mirror/abort", json={"reason": "enough"})
    assert aborted.status_code == 200 and aborted.json()["candidate"] is None
    assert admin(served, "POST", "/mirror/abort", json={"reason": "again"}).status_code == 409
    assert admin(served, "POST", "/mirror/rollback", json={"reason": "none"}).status_code == 409
    [record] = [r for r in audit_records(served.root, "release.shadow") if r["subject"] == "mirror"]
    assert record["actor"] == "ops" and record["tenant"] == "*"


def test_admin_api_promote_refuses_a_regression_with_409(served: Served) -> None:
    refused = admin(served, "POST", "/mirror/promote", json={"candidate": "old-index"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "gate_failed"
    assert app_state(served, "mirror")["current"] == ""


# -- shadow: in process ---------------------------------------------------------------------------------


@pytest.fixture
def shadow_project(tmp_path: Path, embedder: Any, upstreams: Upstreams) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "proj"
    keys = build_project(root, embedder, upstreams)
    return root, keys


def _answers(root: Path, key: str, questions: list[tuple[str, str]], shadow: dict[str, str]) -> list[Any]:
    from keel.project import Project
    from keel.runtime import Runtime
    from keel.settings import Settings

    async def run() -> list[Any]:
        runtime = Runtime(Project.open(Settings(project=root)))
        await runtime.warm_up()
        try:
            for app, candidate in shadow.items():
                runtime.releases.start(app, candidate, stage="shadow", share=1.0, actor="test")
            out = []
            for app, question in questions:
                ctx = runtime.new_context(
                    question=question, credential=key, endpoint="ask", app=runtime.contract.app(app)
                )
                await runtime.pipeline.run(ctx)
                out.append(
                    (
                        ctx.mode,
                        ctx.answer,
                        [(c.number, c.chunk_id) for c in ctx.citations],
                        ctx.release,
                        ctx.model,
                    )
                )
            await runtime.shadow.drain()
            assert (runtime.shadow.dropped, runtime.shadow.failed) == (0, 0)
            for app in shadow:
                runtime.releases.stop(app, actor="test", reason="done")
            return out
        finally:
            await runtime.close()

    return asyncio.run(run())


def test_a_shadow_never_changes_a_response(shadow_project: tuple[Path, dict[str, str]]) -> None:
    root, keys = shadow_project
    questions = [("mirror", LEAVE_Q), ("mirror", TRAVEL_Q), ("mirror", "When must carried-over days be used?")]
    questions += [("plain", "Say hello."), ("plain", "Say hello again.")]
    without = _answers(root, keys["user"], questions, {})
    with_shadow = _answers(root, keys["user"], questions, {"mirror": "alt", "plain": "broken"})
    assert with_shadow == without
    assert [w[0] for w in without] == ["answer"] * 5
    assert all(w[2] for w in without[:3]), "the retrieval answers cite their passages"

    report = json.loads(
        keel(root, "release", "shadow-report", "--app", "mirror", "--candidate", "alt", "--json").stdout
    )
    assert report["pairs"] == 3 and report["errors"] == 0
    assert report["similarity_mean"] is not None and 0 < report["similarity_mean"] <= 1.0001
    assert report["citation_overlap_mean"] is not None and report["mode_agreement"] == 1.0
    failing = json.loads(
        keel(root, "release", "shadow-report", "--app", "plain", "--candidate", "broken", "--json").stdout
    )
    assert failing["pairs"] == 2 and failing["errors"] == 2
    assert {p["error"] for p in failing["disagreements"]} == {"model_unavailable"}
