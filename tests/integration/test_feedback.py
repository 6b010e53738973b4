"""Feedback and outcomes: tied to a trace the caller may see, PII-redacted, audited, reported per app."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import httpx

from tests.integration.conftest import SampleProject, auth

QUESTION = "How many days of annual leave do employees get each year?"


def test_feedback_and_outcomes_are_recorded_for_the_asker_and_reported(
    client: httpx.Client, sample_project: SampleProject
) -> None:
    sam, eli = sample_project.keys["sam.staff"], sample_project.keys["eli.eng"]
    asked = client.post("/v1/ask", json={"question": QUESTION}, headers=auth(sam)).json()
    rid = asked["request_id"]
    rated = client.post(
        "/v1/feedback",
        json={
            "request_id": rid,
            "rating": "down",
            "comment": "Wrong; mail me at sam.private@example.org",
            "correction": "27 days, plus public holidays.",
        },
        headers=auth(sam),
    )
    assert rated.status_code == 201, rated.text
    assert rated.json()["request_id"] == rid
    outcome = client.post(
        "/v1/outcomes", json={"request_id": rid, "name": "minutes_saved", "value": 12}, headers=auth(sam)
    )
    assert outcome.status_code == 201, outcome.text

    # Someone else, even of the same tenant, cannot rate it, and learns nothing about it.
    other = client.post("/v1/feedback", json={"request_id": rid, "rating": "up"}, headers=auth(eli))
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    unknown = client.post("/v1/feedback", json={"request_id": "req_nope", "rating": "up"}, headers=auth(sam))
    assert unknown.status_code == 404
    bad_name = client.post("/v1/outcomes", json={"request_id": rid, "name": "Minutes Saved"}, headers=auth(sam))
    assert bad_name.status_code == 400 and bad_name.json()["error"]["code"] == "invalid_parameter"
    bad_rating = client.post("/v1/feedback", json={"request_id": rid, "rating": "meh"}, headers=auth(sam))
    assert bad_rating.status_code == 400

    conn = sqlite3.connect(sample_project.root / ".keel" / "keel.db")
    try:
        stored = conn.execute("SELECT comment, correction FROM feedback WHERE request_id = ?", (rid,)).fetchone()
    finally:
        conn.close()
    assert "sam.private@example.org" not in stored[0] and "[REDACTED:email]" in stored[0]
    assert stored[1] == "27 days, plus public holidays."

    report = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(sample_project.root), "feedback", "report", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    default = json.loads(report.stdout)["apps"]["default"]
    assert default["down"] >= 1 and default["corrections"] >= 1
    assert default["outcomes"]["minutes_saved"]["total"] >= 12
    audit = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel",
            "--project",
            str(sample_project.root),
            "audit",
            "export",
            "--action",
            "feedback",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert any(r["subject"] == rid and r["data"]["rating"] == "down" for r in records)
