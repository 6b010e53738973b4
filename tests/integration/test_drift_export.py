"""A real drift, acted on by contract: real questions and feedback (with personal data in them) go
through a real server; `keel drift` (a real process, with the embedding model) finds that today's
traffic no longer looks like last week's, exports a redacted fine-tuning dataset that names the
drift, audits it, and tells the webhook."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import auth, small_project, start_server, stop_server
from tests.support.database import database_at
from tests.support.fault_upstream import FaultUpstream
from tests.support.webhook import WebhookHandler, webhook_receiver

CONTRACT = """
name: drift-test
slo: {{alert_webhook: {hook}}}
drift: {{min_requests: 10, on_drift: [alert, export_finetune]}}
models:
  - {{name: extractive, provider: extractive, tier: extractive}}
  - name: upstream
    provider: openai_compatible
    base_url: {url}
    tier: small
    timeouts: {{connect_s: 1, first_token_s: 5, stall_s: 5, total_s: 10}}
    price: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}
routing:
  cache: {{exact: false, semantic: false}}
sources:
  - {{name: all-staff, path: all-staff, groups: [everyone]}}
"""

# Last week: IT questions the documents could not answer.
LAST_WEEK = [
    "My laptop will not connect to the VPN",
    "The printer on floor three is jammed",
    "Which version of the database driver should I install?",
    "How do I request a second monitor?",
]
# Today: HR questions, with the asker's contact details typed in.
TODAY = [
    "Explain how expense claims are approved and paid.",
    "Explain the home office allowance and how to claim it.",
    "Explain how parental leave works for the birth parent.",
    "Why does the company pay into a pension and how much is matched?",
]
EMAIL, PHONE = "ana.lopez@example.org", "+44 20 7946 0958"


@pytest.fixture
def hook() -> Iterator[str]:
    with webhook_receiver() as url:
        yield url


def seed_last_week(root: Path) -> None:
    db = database_at(root / ".keel" / "keel.db")
    start = time.time() - 3 * 86400
    with db.transaction() as conn:
        for i in range(20):
            question = LAST_WEEK[i % len(LAST_WEEK)]
            data = {"request": {"question": question}, "response": {"mode": "no_answer", "answer": ""}}
            conn.execute(
                "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status,"
                " latency_ms, data_json) VALUES (?, ?, 'sam', 'larkspur', 'default', 'ask', 'no_answer', 200, 40.0, ?)",
                (f"req_lastweek{i}", start + i * 60, json.dumps(data)),
            )
    db.close()


def stored_traces(root: Path) -> int:
    db = database_at(root / ".keel" / "keel.db")
    try:
        return int(db.connection().execute("SELECT COUNT(*) FROM traces").fetchone()[0])
    finally:
        db.close()


def test_a_drift_exports_a_redacted_dataset_and_alerts(tmp_path: Path, embedder: Any, hook: str) -> None:
    from keel.identity import KeyStore

    root = tmp_path / "proj"
    with FaultUpstream() as upstream:
        small_project(root, embedder, folders=["all-staff"], contract=CONTRACT.format(url=upstream.base_url, hook=hook))
        db = database_at(root / ".keel" / "keel.db")
        key = KeyStore(db).create(principal_id="sam", tenant="larkspur", groups=[], roles=["user"]).secret
        db.close()
        seed_last_week(root)
        server = start_server(root, root / "server.log")
        try:
            with httpx.Client(base_url=server.url, headers=auth(key), timeout=60) as client:
                for i in range(12):
                    question = f"{TODAY[i % len(TODAY)]} Mail me at {EMAIL}."
                    asked = client.post("/v1/ask", json={"question": question})
                    assert asked.status_code == 200, asked.text
                    rid = asked.json()["request_id"]
                    feedback: dict[str, Any] = {"request_id": rid, "rating": "up"}
                    if i % 3 == 0:
                        feedback = {
                            "request_id": rid,
                            "rating": "down",
                            "correction": f"See the policy page, or call {PHONE} ({i}).",
                        }
                    rated = client.post("/v1/feedback", json=feedback)
                    assert rated.status_code == 201, rated.text
        finally:
            stop_server(server)
    deadline = time.monotonic() + 30
    while stored_traces(root) < 32:
        assert time.monotonic() < deadline, "the traces were not all stored"
        time.sleep(0.1)

    run = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), "drift", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    body = json.loads(run.stdout)
    assert (body["reference_requests"], body["current_requests"]) == (20, 12)
    assert {"topics", "mode_mix"} <= set(body["drifted"])
    actions = body["actions"]
    assert actions["alerted"] and actions["problems"] == []

    out = Path(actions["export_dir"])
    assert out.parent == root / ".keel" / "exports" / "finetune"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["trigger"] == {
        "kind": "drift",
        "dimensions": body["drifted"],
        "threshold": 0.05,
        "audit_seq": actions["audit_seq"],
    }
    assert manifest["from_corrections"] == 4 and manifest["examples"] >= 4
    text = (out / "finetune.jsonl").read_text(encoding="utf-8")
    examples = [json.loads(line) for line in text.splitlines()]
    assert len(examples) == manifest["examples"]
    assert EMAIL not in text and "7946 0958" not in text and "ana.lopez" not in text
    assert all(e["messages"][0]["content"].endswith("Mail me at [REDACTED:email].") for e in examples)

    audit = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), "audit", "export", "--action", "finetune"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [record] = [json.loads(line) for line in audit.stdout.splitlines()]
    assert record["action"] == "finetune.export"
    assert record["data"]["path"] == out.relative_to(root).as_posix()
    assert record["data"]["examples"] == manifest["examples"] and record["data"]["from_corrections"] == 4

    [alert] = WebhookHandler.received
    assert alert["alert"] == "drift" and alert["service"] == "drift-test"
    assert alert["drifted"] == body["drifted"] and alert["export_dir"] == out.relative_to(root).as_posix()
