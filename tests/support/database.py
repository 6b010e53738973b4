"""The database a test opens: SQLite by default, PostgreSQL when the suite runs against it.

``KEEL_TEST_POSTGRES=1`` (see tests/conftest.py) starts one PostgreSQL for the session
and sets ``KEEL_DATABASE_URL`` with ``KEEL_DATABASE_SCHEMA=auto``: every project, in
this process or in a ``keel`` subprocess, then keeps its tables in the schema named
after its data directory, so tests stay as isolated as their temporary folders.
``database_at(data_dir / "keel.db")`` opens the same schema the product would.
"""

from __future__ import annotations

import os
from pathlib import Path

from keel.store import Database, PostgresDatabase, SqliteDatabase, schema_for_data_dir

__all__ = ["database_at", "postgres_selected", "project_database"]


def postgres_selected() -> bool:
    """Whether this run keeps the stores in PostgreSQL."""
    return bool(os.environ.get("KEEL_DATABASE_URL"))


def database_at(path: Path) -> Database:
    """The database of the project whose SQLite file would be ``path``."""
    url = os.environ.get("KEEL_DATABASE_URL")
    if url:
        return PostgresDatabase(url, schema=schema_for_data_dir(path.parent))
    return SqliteDatabase(path)


def project_database(data_dir: Path) -> dict[str, str | None]:
    """The ``Project`` fields that put ``data_dir``'s tables where :func:`database_at` looks."""
    url = os.environ.get("KEEL_DATABASE_URL")
    return {"database_url": url or None, "database_schema": schema_for_data_dir(data_dir) if url else "keel"}
