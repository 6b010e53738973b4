"""Persistence behind one small interface; SQLite is the embedded default, PostgreSQL the shared one."""

import hashlib
from pathlib import Path

from keel.store.database import (
    Connection,
    Cursor,
    Database,
    DatabaseError,
    Dialect,
    IntegrityError,
    Row,
    upsert_statement,
)
from keel.store.postgres import PostgresDatabase
from keel.store.sqlite import SqliteDatabase

__all__ = [
    "Connection",
    "Cursor",
    "Database",
    "DatabaseError",
    "Dialect",
    "IntegrityError",
    "PostgresDatabase",
    "Row",
    "SqliteDatabase",
    "open_database",
    "schema_for_data_dir",
    "upsert_statement",
]


def open_database(*, path: Path, url: str | None = None, schema: str = "keel", auto_migrate: bool = True) -> Database:
    """PostgreSQL when ``url`` names one (``postgresql://...``), else the SQLite file at ``path``.

    ``auto_migrate``: apply pending migrations on first use (``keel db status`` looks without it).
    """
    if url:
        return PostgresDatabase(url, schema=schema, auto_migrate=auto_migrate)
    return SqliteDatabase(path, auto_migrate=auto_migrate)


def schema_for_data_dir(data_dir: Path) -> str:
    """The PostgreSQL schema ``KEEL_DATABASE_SCHEMA=auto`` names for ``data_dir``: ``keel_`` and 12 hex digits."""
    return "keel_" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
