"""Index versions as an operator sees them: listed, activated and rolled back, each move audited.

The CLI (and any admin surface after it) goes through :class:`IndexAdmin`, so that
every activation and rollback lands in the audit log the same way (``index.activate``,
``index.rollback``), after ``ACTIVE`` has moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keel.audit import AuditEvent, AuditLog
from keel.errors import IndexVersionError
from keel.retrieval.activations import Activation
from keel.retrieval.snapshot import read_manifest
from keel.retrieval.versions import IndexStore

__all__ = ["IndexAdmin", "VersionInfo", "describe_versions", "parse_version"]

_VERSION = re.compile(r"^v?0*(\d+)$")


def parse_version(text: str) -> int:
    """``3``, ``v3`` or ``v000003`` as ``3``; :class:`IndexVersionError` otherwise."""
    match = _VERSION.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise IndexVersionError(f"{text!r} is not an index version (write it as 3 or v3)")
    return int(match.group(1))


@dataclass(frozen=True, kw_only=True)
class VersionInfo:
    """One index version on disk, from its manifest."""

    version: int
    created_at: float | None
    documents: int
    passages: int
    embedder: str
    active: bool
    rollback_target: bool
    """Whether ``keel index rollback`` would activate this version now."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shown by ``keel index list --json``."""
        return {
            "version": self.version,
            "created_at": self.created_at,
            "documents": self.documents,
            "passages": self.passages,
            "embedder": self.embedder,
            "active": self.active,
            "rollback_target": self.rollback_target,
        }


def describe_versions(store: IndexStore) -> list[VersionInfo]:
    """Every version on disk, oldest first."""
    active, target = store.active_version(), store.rollback_target()
    out = []
    for version in store.versions():
        try:
            manifest = read_manifest(store.folder(version))
        except (OSError, ValueError):
            manifest = {}
        created = manifest.get("created_at")
        out.append(
            VersionInfo(
                version=version,
                created_at=float(created) if created is not None else None,
                documents=int(manifest.get("documents", 0)),
                passages=int(manifest.get("passages", 0)),
                embedder=str(manifest.get("embedder", "?")),
                active=version == active,
                rollback_target=version == target,
            )
        )
    return out


class IndexAdmin:
    """Activates and rolls back index versions, audited."""

    def __init__(self, store: IndexStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    def activate(self, actor: str, version: int) -> Activation:
        """Make ``version`` the active one; :class:`IndexVersionError` if it does not exist."""
        return self._audited(self._store.activate(version, actor=actor, kind="activate"))

    def rollback(self, actor: str) -> Activation:
        """Return to the version active before the current one; :class:`IndexVersionError` if none."""
        return self._audited(self._store.rollback(actor=actor))

    def _audited(self, activation: Activation) -> Activation:
        self._audit.record_now(
            AuditEvent(
                action=f"index.{activation.kind}",
                actor=activation.actor,
                tenant="*",
                subject=f"v{activation.version}",
                data={"version": activation.version, "previous": activation.previous},
                created_at=activation.at,
            )
        )
        return activation
