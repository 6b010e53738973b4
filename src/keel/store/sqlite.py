"""The embedded SQLite database: connections, transactions and schema migrations.

The default backend of :class:`keel.store.Database`. One file holds metadata, API keys
and traces. Each thread gets its own connection
(SQLite connections are not shared across threads); writes run in ``BEGIN IMMEDIATE``
transactions so a failure never leaves a half-written record. WAL mode lets readers
proceed while one writer commits.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from keel.store.database import Dialect
from keel.store.schema import MIGRATIONS

__all__ = ["SqliteDatabase"]


class SqliteDatabase:
    """A SQLite database file with Keel's schema applied."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, *, auto_migrate: bool = True) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._migrated = not auto_migrate
        self._set_up = False
        self._connections: list[sqlite3.Connection] = []

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened, and the schema migrated, on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection at a time is set up: switching to WAL and migrating need the
        # database to themselves, and concurrent first uses would otherwise collide.
        with self._lock:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            if not self._set_up:
                _use_wal(conn)
                self._set_up = True
            if not self._migrated:
                _migrate(conn)
                self._migrated = True
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def schema_version(self) -> int:
        """The applied schema version."""
        row = self.connection().execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def upgrade(self) -> list[int]:
        """Apply the migrations this file lacks; the versions applied."""
        with self._lock:
            applied = _migrate(self.connection())
            self._migrated = True
        return applied

    def describe(self) -> str:
        """The database file."""
        return f"sqlite:{self.path}"


def _use_wal(conn: sqlite3.Connection, *, timeout_s: float = 30.0) -> None:
    """Switch the file to WAL (it stays so), waiting out other processes' locks.

    The switch takes the database to itself and SQLite does not wait for it (no busy
    handler): another process's or another ``SqliteDatabase``'s transaction makes it
    fail at once with "database is locked", so it is retried until ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(conn: sqlite3.Connection) -> list[int]:
    applied: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for version, script in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            for statement in script.sqlite:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
            applied.append(version)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return applied
