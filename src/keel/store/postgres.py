"""PostgreSQL: the storage layer's backend for replicas that share one database.

Same interface as the embedded SQLite file (:class:`keel.store.Database`): each
thread has its own connection, in autocommit mode, so a single statement commits on
its own and :meth:`PostgresDatabase.transaction` groups several. Stores write ``?``
placeholders; they are translated to psycopg's ``%s`` once per statement text.

Writers are serialised as SQLite serialises them: every write transaction first takes
one transaction-scoped advisory lock, so a read-modify-write (the audit chain's head,
a key rotation, a release promotion) stays atomic across replicas exactly as it is
within one process. Writes are few and batched off the response path, so the lock
costs little; reads never take it.

Keel's tables live in one schema (``KEEL_DATABASE_SCHEMA``, default ``keel``), created
and migrated under a session advisory lock by the first process to connect, or ahead
of time by ``keel db upgrade`` (a deployment's migration Job).
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.adapt import Loader
from psycopg.rows import RowMaker

from keel.errors import ConfigError
from keel.store.database import Dialect
from keel.store.schema import MIGRATIONS

__all__ = ["PgConnection", "PgRow", "PostgresDatabase", "redact_url", "translate"]

_WRITE_LOCK = 0x6B65656C  # "keel": every write transaction holds it
_MIGRATE_LOCK = 0x6B65656D
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_STATEMENT_PART = re.compile(r"'(?:[^']|'')*'|\?|%")


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """``?`` placeholders to ``%s`` (outside string literals); a literal ``%`` doubled."""

    def part(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")

    return _STATEMENT_PART.sub(part, sql)


def redact_url(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PgRow(tuple[Any, ...]):
    """A row addressable by column name or position, like ``sqlite3.Row``."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    row_type = type("Row", (PgRow,), {"_names": names, "__slots__": ()})

    def make(values: Sequence[Any]) -> PgRow:
        return row_type(values)  # type: ignore[no-any-return]

    return make


class _NumberLoader(Loader):
    """NUMERIC (what SUM and AVG of integers give) as an int when whole, else a float, like SQLite."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class PgCursor:
    """A cursor with SQLite's ``rowcount``/``fetch*`` surface."""

    def __init__(self, cursor: psycopg.Cursor[PgRow]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> PgRow | None:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[PgRow]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self.fetchall())


def _text_safe(parameters: Sequence[Any]) -> tuple[Any, ...]:
    """The parameters with NUL characters in strings replaced by U+FFFD.

    PostgreSQL text cannot hold NUL (SQLite's can): a client's string with one would
    otherwise fail the statement. No stored value holds NUL, so a lookup by such a
    string still finds nothing, and a stored one keeps every other character.
    """
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) and "\x00" in v else v for v in parameters)


class PgConnection:
    """One thread's PostgreSQL connection, taking statements with ``?`` placeholders."""

    def __init__(self, raw: psycopg.Connection[PgRow]) -> None:
        self.raw = raw
        # A connection dropped without close() (its database forgotten) is closed, not leaked; the
        # finaliser holds the raw connection, so it is still open to close when this wrapper goes.
        weakref.finalize(self, raw.close)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        cursor = self.raw.cursor()
        cursor.execute(translate(sql), _text_safe(parameters) or None)
        return PgCursor(cursor)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), [_text_safe(p) for p in parameters])
        return PgCursor(cursor)


class PostgresDatabase:
    """Keel's schema in a PostgreSQL database, shared by every replica that names it."""

    dialect: Dialect = "postgresql"

    def __init__(
        self, url: str, *, schema: str = "keel", auto_migrate: bool = True, connect_timeout_s: float = 10.0
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(f"database schema {schema!r} is not a plain lower-case SQL name (KEEL_DATABASE_SCHEMA).")
        self.url = url
        self.schema = schema
        self._connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._migrated = not auto_migrate
        self._connections: list[PgConnection] = []

    def _open(self) -> PgConnection:
        try:
            raw = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(self._connect_timeout_s)),
                row_factory=_row_factory,
                options=f"-c search_path={self.schema},public",
                application_name="keel",
            )
        except psycopg.OperationalError as exc:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {redact_url(self.url)} (KEEL_DATABASE_URL): {_first_line(exc)}"
            ) from exc
        raw.adapters.register_loader("numeric", _NumberLoader)
        return PgConnection(raw)

    def connection(self) -> PgConnection:
        """This thread's connection (opened, and the schema migrated, on first use)."""
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.raw.closed and not conn.raw.broken:
            return conn
        conn = self._open()
        with self._lock:
            if not self._migrated:
                _migrate(conn, self.schema)
                self._migrated = True
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """A write transaction holding the write lock: committed on success, rolled back on any exception."""
        conn = self.connection()
        with conn.raw.transaction():
            conn.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield conn

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            _close_all(self._connections)
        self._local = threading.local()

    def schema_version(self) -> int:
        """The applied schema version (0 before the first migration)."""
        conn = self.connection()
        exists = conn.execute("SELECT to_regclass(?) IS NOT NULL", (f"{self.schema}.keel_schema_migrations",))
        row = exists.fetchone()
        return _applied_version(conn) if row and row[0] else 0

    def upgrade(self) -> list[int]:
        """Apply the migrations the schema lacks; the versions applied."""
        conn = self.connection()
        with self._lock:
            applied = _migrate(conn, self.schema)
            self._migrated = True
        return applied

    def describe(self) -> str:
        """The server and schema, without the password."""
        return f"{redact_url(self.url)} (schema {self.schema})"


def _applied_version(conn: PgConnection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM keel_schema_migrations").fetchone()
    return int(row[0]) if row else 0


def _migrate(conn: PgConnection, schema: str) -> list[int]:
    raw = conn.raw
    raw.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
    try:
        raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        raw.execute(
            "CREATE TABLE IF NOT EXISTS keel_schema_migrations ("
            " version BIGINT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = _applied_version(conn)
        applied: list[int] = []
        for version, migration in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            with raw.transaction():
                for statement in migration.postgres:
                    raw.execute(statement)
                raw.execute(
                    "INSERT INTO keel_schema_migrations (version, applied_at) VALUES (%s, %s)", (version, time.time())
                )
            applied.append(version)
        return applied
    finally:
        raw.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))


def _close_all(connections: list[PgConnection]) -> None:
    for conn in connections:
        with suppress(psycopg.Error):
            conn.raw.close()
    connections.clear()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
