"""The storage layer's interface: what every store needs from a SQL database.

Stores write portable SQL with ``?`` placeholders; a backend translates what its
engine needs. Two backends implement it: SQLite (:mod:`keel.store.sqlite`), the
embedded default, and PostgreSQL (:mod:`keel.store.postgres`), shared by replicas.
Where SQL must differ (JSON inside a trace), a store asks :attr:`Database.dialect`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

import psycopg

__all__ = ["Connection", "Cursor", "Database", "DatabaseError", "Dialect", "IntegrityError", "Row", "upsert_statement"]

Dialect = Literal["sqlite", "postgresql"]

DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)
"""What a failed statement raises, whichever the backend."""

IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)
"""What a violated key or constraint raises, whichever the backend."""


class Row(Protocol):
    """A result row: by column name or position; ``dict(row)`` gives the named values."""

    def __getitem__(self, key: str | int, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """One connection (a thread's own): statements with ``?`` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class Database(Protocol):
    """A database with Keel's schema applied."""

    @property
    def dialect(self) -> Dialect: ...

    def connection(self) -> Connection:
        """This thread's connection (opened, and the schema migrated, on first use)."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction, serialised against every other writer: all of it lands, or none."""
        ...

    def close(self) -> None:
        """Close every connection this object opened."""
        ...

    def schema_version(self) -> int:
        """The applied schema version."""
        ...

    def upgrade(self) -> list[int]:
        """Apply the migrations the database lacks; the versions applied (safe from several processes)."""
        ...

    def describe(self) -> str:
        """Where the data lives, with no credentials (for logs, ``/readyz`` and ``keel db``)."""
        ...


def upsert_statement(table: str, columns: Sequence[str], *, key: Sequence[str]) -> str:
    """``INSERT`` one row, replacing the row with the same ``key``: portable SQL with ``?`` placeholders.

    Table and column names are the caller's constants, never input.
    """
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) {action}"
