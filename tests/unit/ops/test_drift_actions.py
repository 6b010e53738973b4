"""What a drift does by contract: always audited; an alert to the webhook; a fine-tune export that names its trigger."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.audit import AuditLog
from keel.contract import Contract, parse_contract
from keel.errors import ContractError
from keel.ops.drift import DriftReport
from keel.ops.drift_actions import act_on_drift
from keel.policy.pii import redact
from keel.store import Database
from tests.support.database import database_at
from tests.support.webhook import WebhookHandler, webhook_receiver

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
DRIFTED = DriftReport(
    reference_requests=40,
    current_requests=35,
    threshold=0.05,
    divergence={"mode_mix": 0.31, "topics": 0.42, "answer_length": 0.01},
    enough_data=True,
)
EMAIL, PHONE = "ana.lopez@example.org", "+44 20 7946 0958"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = database_at(tmp_path / "keel.db")
    yield database
    database.close()


@pytest.fixture
def audit(db: Database) -> Iterator[AuditLog]:
    log = AuditLog(db, redact=redact)
    yield log
    log.close()


@pytest.fixture
def receiver() -> Iterator[str]:
    with webhook_receiver() as url:
        yield url


def seed_feedback(db: Database) -> None:
    """Two approved answers and a correction, with personal data a person typed in."""
    rows = [
        ("r1", f"How many leave days do I get? Reply to {EMAIL}", "27 days [1].", "up", None),
        ("r2", "When is pay day?", "Every day.", "down", f"On the 25th; call {PHONE} with questions."),
        ("r3", "How many leave days do I get? Reply to someone", "27 days [1].", "up", None),
    ]
    with db.transaction() as conn:
        for rid, question, answer, rating, correction in rows:
            data = {"request": {"question": question}, "response": {"mode": "answer", "answer": answer}}
            conn.execute(
                "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status,"
                " latency_ms, data_json) VALUES (?, ?, 'p', 'acme', 'default', 'ask', 'answer', 200, 10.0, ?)",
                (rid, NOW - 3600, json.dumps(data)),
            )
            conn.execute(
                "INSERT INTO feedback (feedback_id, request_id, created_at, tenant, principal_id, app, rating,"
                " correction) VALUES (?, ?, ?, 'acme', 'p', 'default', ?, ?)",
                (f"fb_{rid}", rid, NOW - 3000, rating, correction),
            )


def contract(drift: str, webhook: str | None = None) -> Contract:
    slo = f"slo: {{alert_webhook: {webhook}}}\n" if webhook else ""
    return parse_contract(f"name: keel-test\n{slo}drift: {drift}\n")


def test_a_drift_writes_an_export_whose_manifest_names_the_drift(tmp_path: Path, db: Database, audit: AuditLog) -> None:
    seed_feedback(db)
    done = act_on_drift(
        DRIFTED,
        contract("{on_drift: [export_finetune]}"),
        root=tmp_path,
        db=db,
        audit=audit,
        redact=redact,
        now=NOW,
    )
    assert done.export_dir == tmp_path / ".keel" / "exports" / "finetune" / "20270115T080000Z"
    assert not done.alerted and done.problems == []
    manifest = json.loads((done.export_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["trigger"] == {
        "kind": "drift",
        "dimensions": ["mode_mix", "topics"],
        "threshold": 0.05,
        "audit_seq": done.audit_seq,
    }
    assert manifest["examples"] == 3 and manifest["from_corrections"] == 1
    rows = (done.export_dir / "finetune.jsonl").read_text(encoding="utf-8")
    assert EMAIL not in rows and "7946 0958" not in rows
    assert "[REDACTED:email]" in rows and "[REDACTED:phone]" in rows
    detected, exported = list(audit.records(action="drift")), list(audit.records(action="finetune"))
    assert [(r.seq, r.subject) for r in detected] == [(done.audit_seq, "mode_mix,topics")]
    assert detected[0].data["on_drift"] == ["export_finetune"]
    [record] = exported
    assert record.action == "finetune.export"
    assert record.data["path"] == record.subject == ".keel/exports/finetune/20270115T080000Z"
    assert (record.data["examples"], record.data["from_corrections"], record.data["from_approvals"]) == (3, 1, 2)
    assert record.data["trigger"]["dimensions"] == ["mode_mix", "topics"]
    assert record.data["sha256"] == manifest["sha256"]
    assert audit.verify().ok


def test_drifts_in_the_same_second_get_their_own_folders(tmp_path: Path, db: Database, audit: AuditLog) -> None:
    settings = contract("{on_drift: [export_finetune], export_dir: exports/drift}")
    first = act_on_drift(DRIFTED, settings, root=tmp_path, db=db, audit=audit, redact=redact, now=NOW)
    second = act_on_drift(DRIFTED, settings, root=tmp_path, db=db, audit=audit, redact=redact, now=NOW)
    assert first.export_dir == tmp_path / "exports" / "drift" / "20270115T080000Z"
    assert second.export_dir == tmp_path / "exports" / "drift" / "20270115T080000Z-1"
    assert first.manifest is not None and first.manifest.examples == 0


def test_the_alert_reaches_the_webhook_and_names_the_drift_and_the_export(
    tmp_path: Path, db: Database, audit: AuditLog, receiver: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed_feedback(db)
    with caplog.at_level(logging.WARNING, logger="keel.ops.drift_actions"):
        done = act_on_drift(
            DRIFTED,
            contract("{on_drift: [alert, export_finetune]}", webhook=receiver),
            root=tmp_path,
            db=db,
            audit=audit,
            redact=redact,
            now=NOW,
        )
    assert done.alerted and done.problems == [] and done.manifest is not None
    [payload] = WebhookHandler.received
    assert payload["alert"] == "drift" and payload["service"] == "keel-test"
    assert payload["drifted"] == ["mode_mix", "topics"] and payload["audit_seq"] == done.audit_seq
    assert payload["export_dir"] == ".keel/exports/finetune/20270115T080000Z"
    assert "mode_mix 0.310, topics 0.420" in payload["message"]
    assert "export written to .keel/exports/finetune/20270115T080000Z" in payload["message"]
    assert any("traffic drifted" in r.getMessage() for r in caplog.records)


def test_by_default_a_drift_is_audited_and_alerted_but_not_exported(
    tmp_path: Path, db: Database, audit: AuditLog, receiver: str
) -> None:
    settings = parse_contract(f"slo: {{alert_webhook: {receiver}}}\n")
    assert settings.drift.on_drift == ["alert"] and settings.drift.export_dir == ".keel/exports/finetune"
    done = act_on_drift(DRIFTED, settings, root=tmp_path, db=db, audit=audit, redact=redact, now=NOW)
    assert done.alerted and done.export_dir is None and done.manifest is None
    assert not (tmp_path / ".keel").exists()
    assert len(WebhookHandler.received) == 1 and WebhookHandler.received[0]["export_dir"] is None
    assert [r.action for r in audit.records()] == ["drift.detected"]


def test_an_unreachable_webhook_is_reported_not_raised(tmp_path: Path, db: Database, audit: AuditLog) -> None:
    settings = contract("{on_drift: [alert]}", webhook="http://127.0.0.1:9/hook")
    done = act_on_drift(DRIFTED, settings, root=tmp_path, db=db, audit=audit, redact=redact, now=NOW, timeout_s=1.0)
    assert done.alerted and done.problems and "unreachable" in done.problems[0]
    assert [r.action for r in audit.records()] == ["drift.detected"]


def test_an_export_that_cannot_be_written_is_reported(tmp_path: Path, db: Database, audit: AuditLog) -> None:
    (tmp_path / "exports").write_text("a file where the folder should be", encoding="utf-8")
    settings = contract("{on_drift: [export_finetune], export_dir: exports}")
    done = act_on_drift(DRIFTED, settings, root=tmp_path, db=db, audit=audit, redact=redact, now=NOW)
    assert done.export_dir is None and done.problems and done.problems[0].startswith("export not written")
    assert [r.action for r in audit.records()] == ["drift.detected"]


def test_no_drift_is_not_acted_on(tmp_path: Path, db: Database, audit: AuditLog) -> None:
    stable = DriftReport(
        reference_requests=40, current_requests=40, threshold=0.05, divergence={"mode_mix": 0.01}, enough_data=True
    )
    with pytest.raises(ValueError, match="no drift"):
        act_on_drift(stable, contract("{}"), root=tmp_path, db=db, audit=audit, redact=redact)


@pytest.mark.parametrize(
    ("drift", "field"),
    [("{export_dir: ../elsewhere}", "drift.export_dir"), ("{on_drift: [page_someone]}", "drift.on_drift[0]")],
)
def test_the_contract_rejects_exports_outside_the_project_and_unknown_actions(drift: str, field: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_contract(f"drift: {drift}\n", source="keel.yaml")
    assert info.value.problems[0][0] == f"keel.yaml:1 {field}"
