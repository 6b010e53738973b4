"""Feedback and outcomes: tied to a trace the caller may see, PII-redacted, audited, reported per app."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.integration.conftest import SampleProject, auth
from tests.support.database import database_at

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

    db = database_at(sample_project.root / ".keel" / "keel.db")
    try:
        sql = "SELECT comment, correction FROM feedback WHERE request_id = ?"
        stored = db.connection().execute(sql, (rid,)).fetchone()
    finally:
        db.close()
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


def test_feedback_is_reported_per_release_and_per_tag(client: httpx.Client, sample_project: SampleProject) -> None:
    fiona = sample_project.keys["fiona.fin"]
    tagged = client.post(
        "/v1/ask",
        json={"question": "How do I submit an expense claim?", "tags": ["pilot-finance", "emea"]},
        headers=auth(fiona),
    ).json()
    untagged = client.post(
        "/v1/ask", json={"question": "How do I submit an expense claim?"}, headers=auth(fiona)
    ).json()
    trace = client.get(f"/v1/traces/{tagged['request_id']}", headers=auth(fiona)).json()
    release = trace["response"]["release"]
    assert release == f"{tagged['prompt'] or 'answer@2'}+index@{tagged['index_version']}"
    assert trace["request"]["tags"] == ["pilot-finance", "emea"]
    for rid, rating in ((tagged["request_id"], "up"), (untagged["request_id"], "down")):
        assert (
            client.post("/v1/feedback", json={"request_id": rid, "rating": rating}, headers=auth(fiona)).status_code
            == 201
        )
    assert (
        client.post(
            "/v1/outcomes",
            json={"request_id": tagged["request_id"], "name": "ticket_resolved", "value": 1},
            headers=auth(fiona),
        ).status_code
        == 201
    )
    report = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(sample_project.root), "feedback", "report", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data = json.loads(report.stdout)
    assert data["releases"][release]["up"] >= 1 and data["releases"][release]["down"] >= 1
    for tag in ("pilot-finance", "emea"):
        assert data["tags"][tag]["up"] == 1 and data["tags"][tag]["down"] == 0, (
            "the untagged request counts under no tag"
        )
        assert data["tags"][tag]["outcomes"]["ticket_resolved"]["count"] == 1
    table = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(sample_project.root), "feedback", "report"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "Feedback by release" in table and "Feedback by tag" in table and "pilot-finance" in table


def test_malformed_tags_are_refused_with_the_field_named(client: httpx.Client, sample_project: SampleProject) -> None:
    key = sample_project.keys["fiona.fin"]
    for tags in (["Has Spaces"], ["x" * 65], [f"t{i}" for i in range(9)], "pilot"):
        response = client.post(
            "/v1/ask", json={"question": "How do I submit an expense claim?", "tags": tags}, headers=auth(key)
        )
        assert response.status_code == 400, (tags, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and "tags" in error["message"]
