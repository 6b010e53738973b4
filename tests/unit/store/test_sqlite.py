"""The SQLite store: schema applied once, transactions all-or-nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from keel.store import SqliteDatabase
from keel.store.schema import MIGRATIONS


def test_schema_is_applied_on_first_use(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "k.db")
    assert db.schema_version() == len(MIGRATIONS)
    tables = {r[0] for r in db.connection().execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"api_keys", "documents", "chunks", "index_versions", "traces"} <= tables


def test_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "k.db")
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute(
            "INSERT INTO api_keys (key_id, secret_hash, principal_id, tenant, groups_json, roles_json, label,"
            " created_at) VALUES ('k1', 'h', 'p', 't', '[]', '[]', '', 0)"
        )
        raise RuntimeError("boom")
    assert db.connection().execute("SELECT COUNT(*) FROM api_keys").fetchone()[0] == 0


def test_each_thread_gets_its_own_connection(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "k.db")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(id(db.connection()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 3
    db.close()


def test_many_threads_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "k.db")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        try:
            barrier.wait()
            db.connection().execute("SELECT COUNT(*) FROM traces").fetchone()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    db.close()


def test_database_objects_of_several_replicas_open_a_new_file_at_once(tmp_path: Path) -> None:
    for attempt in range(15):
        path = tmp_path / f"k{attempt}.db"
        databases = [SqliteDatabase(path) for _ in range(4)]
        barrier = threading.Barrier(len(databases))
        failures: list[BaseException] = []

        def first_use(
            db: SqliteDatabase, barrier: threading.Barrier = barrier, failures: list[BaseException] = failures
        ) -> None:
            barrier.wait()
            try:
                with db.transaction() as tx:
                    tx.execute(
                        "INSERT INTO source_freshness (source, last_attempt_at, last_attempt_ok) VALUES (?, 1, 1)",
                        (str(id(db)),),
                    )
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=first_use, args=(db,)) for db in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        try:
            assert failures == [], failures
            count = databases[0].connection().execute("SELECT COUNT(*) FROM source_freshness").fetchone()[0]
            assert count == len(databases)
        finally:
            for db in databases:
                db.close()
