"""The audit log's hash chain catches edited, deleted and reordered records, and survives pruning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.audit import GENESIS, AuditEvent, AuditLog
from keel.policy.pii import redact
from keel.store import Database
from tests.support.database import database_at


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = database_at(tmp_path / "keel.db")
    yield database
    database.close()


@pytest.fixture
def log(db: Database) -> Iterator[AuditLog]:
    audit = AuditLog(db, redact=redact)
    yield audit
    audit.close()


def _fill(log: AuditLog, n: int, *, start: float = 1_000.0) -> None:
    for i in range(n):
        log.record(
            AuditEvent(
                action="request",
                actor=f"user{i % 3}",
                tenant="acme" if i % 2 else "globex",
                subject=f"req_{i}",
                data={"mode": "answer", "served": [{"doc_id": f"d{i}", "chunk_id": f"c{i}"}]},
                created_at=start + i,
            )
        )
    log.flush()


def test_an_untouched_chain_verifies_and_its_head_is_the_last_record(log: AuditLog) -> None:
    _fill(log, 10)
    report = log.verify()
    assert report.ok and report.checked == 10 and report.head_seq == 10
    assert log.head() == (10, report.head_hash)
    assert [r.seq for r in log.records()] == list(range(1, 11))
    first = next(log.records())
    assert first.prev_hash == GENESIS


def test_an_empty_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert report.ok and report.checked == 0 and log.head() == (0, GENESIS)


def test_an_edited_record_is_named(log: AuditLog, db: Database) -> None:
    _fill(log, 8)
    with db.transaction() as conn:
        conn.execute("UPDATE audit_log SET data_json = ? WHERE seq = 5", (json.dumps({"mode": "refused"}),))
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 5
    assert "edited" in report.problem


def test_a_deleted_record_is_named(log: AuditLog, db: Database) -> None:
    _fill(log, 8)
    with db.transaction() as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 4")
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 4
    assert "missing" in report.problem


def test_reordered_records_are_named(log: AuditLog, db: Database) -> None:
    _fill(log, 8)
    with db.transaction() as conn:
        conn.execute("UPDATE audit_log SET seq = -1 WHERE seq = 3")
        conn.execute("UPDATE audit_log SET seq = 3 WHERE seq = 6")
        conn.execute("UPDATE audit_log SET seq = 6 WHERE seq = -1")
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 3
    assert "does not follow" in report.problem


def test_a_record_cut_from_the_end_is_noticed(log: AuditLog, db: Database) -> None:
    _fill(log, 5)
    with db.transaction() as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 5")
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 5


def test_a_rewritten_log_fails_against_a_head_kept_elsewhere(log: AuditLog, db: Database) -> None:
    _fill(log, 4)
    kept = log.head()[1]
    with db.transaction() as conn:
        conn.execute("DELETE FROM audit_log")
        conn.execute("DELETE FROM audit_state")
    _fill(log, 4, start=5_000.0)
    assert log.verify().ok
    report = log.verify(expect_head=kept)
    assert not report.ok and "rewritten" in report.problem


def test_pruning_old_records_keeps_the_chain_verifiable(log: AuditLog) -> None:
    _fill(log, 10, start=1_000.0)
    deleted = log.prune(older_than=1_006.0)
    assert deleted == 6
    report = log.verify()
    assert report.ok, report.problem
    seqs = [r.seq for r in log.records()]
    assert seqs[0] == 7 and seqs[-1] == 11
    assert [r.action for r in log.records()][-1] == "audit.prune"


def test_records_never_hold_raw_pii(log: AuditLog, db: Database) -> None:
    log.record_now(
        AuditEvent(
            action="policy.block",
            actor="ann@example.com",
            tenant="acme",
            subject="req_1",
            data={"note": "card 4111 1111 1111 1111, call +44 20 7946 0958", "nested": ["ssn 123-45-6789"]},
        )
    )
    raw = "\n".join(str(tuple(row)) for row in db.connection().execute("SELECT * FROM audit_log"))
    for secret in ("ann@example.com", "4111 1111 1111 1111", "7946 0958", "123-45-6789"):
        assert secret not in raw
    assert log.verify().ok


def test_filters_select_by_tenant_action_and_time(log: AuditLog) -> None:
    _fill(log, 6, start=100.0)
    log.record_now(AuditEvent(action="key.create", actor="cli", tenant="acme", subject="k1", created_at=200.0))
    assert {r.tenant for r in log.records(tenant="acme")} == {"acme"}
    assert [r.subject for r in log.records(action="key")] == ["k1"]
    assert [r.subject for r in log.records(since=104.0)] == ["req_4", "req_5", "k1"]
