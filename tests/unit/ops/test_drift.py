"""Drift between a reference and a current window: topics (real embeddings), scores, lengths, modes, refusals;
and `keel drift` acting on one as the contract says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.contract import DriftSettings
from keel.ops.drift import compute_drift, kl_divergence
from keel.store import Database
from tests.support.database import database_at

NOW = 1_800_000_000.0
DAY = 86400.0
EMAIL, PHONE = "ana.lopez@example.org", "+44 20 7946 0958"
SETTINGS = DriftSettings(reference_days=7, current_days=1, threshold=0.05, topics=4, min_requests=20)
HR = [
    "How many days of annual leave do I get?",
    "When is pay day this month?",
    "How do I claim travel expenses?",
    "What is the parental leave policy?",
    "Can I carry over unused holiday?",
]
IT = [
    "My laptop will not connect to the VPN",
    "How do I reset my multi-factor authentication token?",
    "The printer on floor three is jammed",
    "Which version of the database driver should I install?",
    "How do I request a second monitor?",
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = database_at(tmp_path / "k.db")
    yield database
    database.close()


def _add(db: Database, at: float, questions: list[str], *, mode: str = "answer", score: float = 0.7) -> None:
    rows = []
    for i, question in enumerate(questions):
        data: dict[str, Any] = {
            "request": {"question": question},
            "response": {"answer": "Twenty-seven days, see the policy. [1]" if mode == "answer" else ""},
            "spans": [{"name": "retrieve", "attributes": {"hits": [{"dense_score": score}]}}],
        }
        rows.append((f"r-{at}-{i}", at + i, mode, json.dumps(data)))
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status, latency_ms,"
            " data_json) VALUES (?, ?, 'p', 't', 'default', 'ask', ?, 200, 5.0, ?)",
            rows,
        )


def test_kl_divergence_is_zero_for_equal_histograms_and_finite_for_empty_bins() -> None:
    assert kl_divergence([5, 5, 0], [5, 5, 0]) == pytest.approx(0.0)
    assert 0 < kl_divergence([0, 0, 10], [10, 0, 0]) < 10


def test_the_same_traffic_does_not_drift(db: Database, embedder: Any) -> None:
    _add(db, NOW - 3 * DAY, HR * 6)
    _add(db, NOW - 0.5 * DAY, HR * 6)
    report = compute_drift(db, SETTINGS, embedder=embedder, now=NOW)
    assert report.enough_data and report.reference_requests == 30 and report.current_requests == 30
    assert report.drifted == []
    assert set(report.divergence) == {"mode_mix", "refusal_rate", "answer_length", "top_score", "topics"}


def test_new_topics_refusals_and_weaker_retrieval_drift(db: Database, embedder: Any) -> None:
    _add(db, NOW - 3 * DAY, HR * 6)
    _add(db, NOW - 0.5 * DAY, IT * 4, mode="refused", score=0.25)
    _add(db, NOW - 0.4 * DAY, HR * 2)
    report = compute_drift(db, SETTINGS, embedder=embedder, now=NOW)
    assert {"topics", "mode_mix", "refusal_rate", "top_score", "answer_length"} <= set(report.drifted)
    assert report.divergence["topics"] > SETTINGS.threshold


def test_too_little_traffic_gives_no_verdict(db: Database) -> None:
    _add(db, NOW - 3 * DAY, HR)
    _add(db, NOW - 0.5 * DAY, IT, mode="refused")
    report = compute_drift(db, SETTINGS, now=NOW)
    assert not report.enough_data and report.drifted == []
    assert report.divergence["mode_mix"] > SETTINGS.threshold


def seed_window(db: Database, start: float, questions: list[str], *, mode: str) -> None:
    """Requests with an answer (or a refusal), each approved or corrected by its asker."""
    with db.transaction() as conn:
        for i, question in enumerate(questions):
            rid = f"q-{start}-{i}"
            answer = "Twenty-seven days, see the policy. [1]" if mode == "answer" else ""
            data = {"request": {"question": question}, "response": {"mode": mode, "answer": answer}}
            conn.execute(
                "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status,"
                " latency_ms, data_json) VALUES (?, ?, 'p', 't', 'default', 'ask', ?, 200, 5.0, ?)",
                (rid, start + i, mode, json.dumps(data)),
            )
            correction = f"Ask the service desk: {PHONE}." if mode == "refused" else None
            conn.execute(
                "INSERT INTO feedback (feedback_id, request_id, created_at, tenant, principal_id, app, rating,"
                " correction) VALUES (?, ?, ?, 't', 'p', 'default', ?, ?)",
                (f"fb-{rid}", rid, start + i + 1, "up" if mode == "answer" else "down", correction),
            )


def test_keel_drift_exports_a_redacted_dataset_when_the_contract_says_so(tmp_path: Path) -> None:
    import time

    from click.testing import CliRunner

    from keel.audit import AuditLog
    from keel.cli.main import main
    from keel.policy.pii import redact

    (tmp_path / "docs").mkdir()
    (tmp_path / "keel.yaml").write_text(
        "drift: {min_requests: 20, on_drift: [export_finetune], export_dir: exports/drift}\n", encoding="utf-8"
    )
    db = database_at(tmp_path / ".keel" / "keel.db")
    now = time.time()
    seed_window(db, now - 3 * DAY, [f"{q} Mail me at {EMAIL}" for q in HR * 5], mode="answer")
    seed_window(db, now - 0.5 * DAY, IT * 5, mode="refused")
    db.close()
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "drift", "--no-topics", "--json"])
    assert result.exit_code == 1, result.output
    body = json.loads(result.output)
    assert "mode_mix" in body["drifted"] and "refusal_rate" in body["drifted"]
    actions = body["actions"]
    assert actions["alerted"] is False and actions["problems"] == []
    out = Path(actions["export_dir"])
    assert out.parent == tmp_path / "exports" / "drift"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["trigger"]["kind"] == "drift" and manifest["trigger"]["dimensions"] == body["drifted"]
    assert manifest["examples"] == actions["export"]["examples"] == 10  # five approved, five corrections
    rows = (out / "finetune.jsonl").read_text(encoding="utf-8")
    assert EMAIL not in rows and "7946 0958" not in rows and "[REDACTED:email]" in rows
    db = database_at(tmp_path / ".keel" / "keel.db")
    audit = AuditLog(db, redact=redact)
    try:
        assert [r.action for r in audit.records()] == ["drift.detected", "finetune.export"]
        [export] = audit.records(action="finetune")
        assert export.data["path"] == out.relative_to(tmp_path).as_posix()
    finally:
        audit.close()
        db.close()
