"""Schema versions: what a database has applied, what this release of Keel ships, and upgrading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.store.database import Database
from keel.store.schema import MIGRATIONS

__all__ = ["LATEST_VERSION", "DatabaseStatus", "UpgradeResult", "database_status", "upgrade_database"]

LATEST_VERSION = len(MIGRATIONS)
"""The schema version this release of Keel expects."""


@dataclass(frozen=True, kw_only=True)
class DatabaseStatus:
    """Which database is in use and how far its schema is."""

    backend: str
    location: str
    version: int
    latest: int

    @property
    def pending(self) -> bool:
        """Migrations this release ships that the database has not applied."""
        return self.version < self.latest

    def to_dict(self) -> dict[str, Any]:
        """The status as plain data."""
        return {
            "backend": self.backend,
            "location": self.location,
            "version": self.version,
            "latest": self.latest,
            "pending": self.pending,
        }


@dataclass(frozen=True, kw_only=True)
class UpgradeResult:
    """What an upgrade applied."""

    location: str
    applied: list[int]
    version: int

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data."""
        return {"location": self.location, "applied": self.applied, "version": self.version}


def database_status(db: Database) -> DatabaseStatus:
    """The state of ``db``'s schema (open it with ``auto_migrate=False`` to see pending migrations)."""
    return DatabaseStatus(
        backend=db.dialect, location=db.describe(), version=db.schema_version(), latest=LATEST_VERSION
    )


def upgrade_database(db: Database) -> UpgradeResult:
    """Apply every pending migration of ``db``."""
    applied = db.upgrade()
    return UpgradeResult(location=db.describe(), applied=applied, version=db.schema_version())
