"""The PostgreSQL backend against a real server: same behaviour as the SQLite file, shared by processes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from keel.audit.log import AuditEvent, AuditLog
from keel.errors import ConfigError
from keel.store import PostgresDatabase, upsert_statement
from keel.store.migrate import LATEST_VERSION, database_status, upgrade_database
from keel.store.postgres import redact_url, translate


@pytest.fixture
def db(postgres_url: str) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase(postgres_url, schema="t_" + uuid.uuid4().hex[:12])
    yield database
    database.close()


def test_placeholders_become_psycopg_ones_but_not_inside_string_literals() -> None:
    assert translate("SELECT * FROM t WHERE a = ? AND b LIKE 'x?%' AND c = ?") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x?%%' AND c = %s"
    )
    assert translate("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"


def test_the_password_never_appears_in_the_description() -> None:
    assert redact_url("postgresql://keel:s3cret@db:5432/keel") == "postgresql://keel:***@db:5432/keel"
    assert "s3cret" not in PostgresDatabase("postgresql://keel:s3cret@db/keel").describe()


def test_a_schema_name_that_is_not_a_plain_identifier_is_refused() -> None:
    with pytest.raises(ConfigError, match="KEEL_DATABASE_SCHEMA"):
        PostgresDatabase("postgresql://127.0.0.1/x", schema='keel"; DROP TABLE x; --')


def test_an_unreachable_server_is_a_clear_configuration_error() -> None:
    db = PostgresDatabase("postgresql://keel:pw@127.0.0.1:1/keel", connect_timeout_s=1)
    with pytest.raises(ConfigError, match=r"cannot connect to PostgreSQL at postgresql://keel:\*\*\*@127.0.0.1:1"):
        db.connection()


def test_every_migration_is_applied_on_first_use(db: PostgresDatabase) -> None:
    assert db.schema_version() == LATEST_VERSION
    tables = {
        r["table_name"]
        for r in db.connection().execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", (db.schema,)
        )
    }
    assert {"api_keys", "traces", "audit_log", "spend", "release_state", "console_sessions"} <= tables


def test_status_shows_pending_migrations_and_upgrade_applies_them(postgres_url: str) -> None:
    fresh = PostgresDatabase(postgres_url, schema="t_" + uuid.uuid4().hex[:12], auto_migrate=False)
    before = database_status(fresh)
    assert before.version == 0 and before.pending and before.backend == "postgresql"
    result = upgrade_database(fresh)
    assert result.applied == list(range(1, LATEST_VERSION + 1))
    assert not database_status(fresh).pending
    assert upgrade_database(fresh).applied == []
    fresh.close()


def test_rows_read_by_name_position_and_as_a_dict(db: PostgresDatabase) -> None:
    row = db.connection().execute("SELECT 1 AS one, 'two' AS two").fetchone()
    assert (row["one"], row[1], dict(zip(row.keys(), row, strict=True))) == (1, "two", {"one": 1, "two": "two"})


def test_sums_of_integers_come_back_as_ints_and_fractions_as_floats(db: PostgresDatabase) -> None:
    row = db.connection().execute("SELECT SUM(x) AS whole, AVG(x) AS mean FROM (VALUES (1), (2)) AS v(x)").fetchone()
    assert (row["whole"], row["mean"]) == (3, 1.5)
    assert isinstance(row["whole"], int) and isinstance(row["mean"], float)


def test_a_failed_transaction_leaves_nothing_behind(db: PostgresDatabase) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute(
            "INSERT INTO api_keys (key_id, secret_hash, principal_id, tenant, groups_json, roles_json, label,"
            " created_at) VALUES ('k1', 'h', 'p', 't', '[]', '[]', '', 0)"
        )
        raise RuntimeError("boom")
    assert db.connection().execute("SELECT COUNT(*) FROM api_keys").fetchone()[0] == 0


def test_an_upsert_replaces_the_row_with_the_same_key(db: PostgresDatabase) -> None:
    sql = upsert_statement("source_freshness", ("source", "last_attempt_at", "last_attempt_ok"), key=("source",))
    conn = db.connection()
    conn.execute(sql, ("docs", 1.0, 0))
    conn.execute(sql, ("docs", 2.0, 1))
    rows = conn.execute("SELECT source, last_attempt_at, last_attempt_ok FROM source_freshness")
    assert [tuple(r) for r in rows] == [("docs", 2.0, 1)]


def test_binary_values_and_timestamps_keep_full_precision(db: PostgresDatabase) -> None:
    now = 1_780_000_000.123456
    db.connection().execute(
        "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status, latency_ms,"
        " data_json) VALUES (?, ?, 'p', 't', 'a', 'ask', 'answer', 200, 1.5, '{}')",
        ("r1", now),
    )
    assert db.connection().execute("SELECT created_at FROM traces").fetchone()[0] == now


def test_audit_appends_from_several_processes_keep_one_valid_chain(postgres_url: str) -> None:
    schema = "t_" + uuid.uuid4().hex[:12]
    replicas = [PostgresDatabase(postgres_url, schema=schema) for _ in range(3)]
    logs = [AuditLog(db, redact=lambda s: s) for db in replicas]
    errors: list[BaseException] = []

    def append(log: AuditLog, replica: int) -> None:
        try:
            for i in range(20):
                log.record_now(AuditEvent(tenant="acme", actor=f"r{replica}", action="key.create", subject=f"k{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(log, n)) for n, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = logs[0].verify()
    assert report.ok, report
    assert report.checked == 60
    seqs = [r[0] for r in replicas[0].connection().execute("SELECT seq FROM audit_log ORDER BY seq")]
    assert seqs == list(range(1, 61))
    for db in replicas:
        db.close()


def test_a_string_with_a_nul_character_is_stored_and_looked_up_without_an_error(db: PostgresDatabase) -> None:
    sql = upsert_statement("source_freshness", ("source", "last_attempt_at", "last_attempt_ok"), key=("source",))
    with db.transaction() as tx:
        tx.execute(sql, ("a\x00b", 1.0, 1))
    conn = db.connection()
    assert [r[0] for r in conn.execute("SELECT source FROM source_freshness")] == ["a\ufffdb"]
    assert conn.execute("SELECT source FROM source_freshness WHERE source = ?", ("\x00",)).fetchone() is None
