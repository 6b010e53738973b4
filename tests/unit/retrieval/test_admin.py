"""Index administration: every activation and rollback is in the audit log, after ACTIVE moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.audit import AuditLog
from keel.errors import IndexVersionError
from keel.policy.pii import redact
from keel.retrieval.admin import IndexAdmin, describe_versions, parse_version
from keel.retrieval.versions import IndexStore
from tests.support.database import database_at
from tests.unit.retrieval.builders import passage, publish


def test_activate_and_rollback_are_audited_and_failures_are_not(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index")
    for i in (1, 2):
        publish(store, [passage("a.md", f"Text {i}.")])
    db = database_at(tmp_path / "keel.db")
    audit = AuditLog(db, redact=redact)
    admin = IndexAdmin(store, audit)
    admin.activate("cli:ana", 1)
    admin.rollback("cli:ana")
    with pytest.raises(IndexVersionError):
        admin.activate("cli:ana", 7)
    records = list(audit.records())
    assert [(r.action, r.actor, r.tenant, r.subject, r.data) for r in records] == [
        ("index.activate", "cli:ana", "*", "v1", {"version": 1, "previous": 2}),
        ("index.rollback", "cli:ana", "*", "v2", {"version": 2, "previous": 1}),
    ]
    assert audit.verify().ok
    audit.close()
    db.close()


def test_versions_are_described_from_their_manifests(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index")
    publish(store, [passage("a.md", "One."), passage("b.md", "Two.")])
    publish(store, [passage("a.md", "One.")])
    infos = describe_versions(store)
    assert [(i.version, i.documents, i.passages, i.active, i.rollback_target) for i in infos] == [
        (1, 2, 2, False, True),
        (2, 1, 1, True, False),
    ]
    assert infos[0].created_at == 1_000_001.0 and infos[0].embedder == "test"


@pytest.mark.parametrize(("text", "version"), [("3", 3), ("v3", 3), ("v000012", 12)])
def test_versions_are_written_as_numbers_or_folder_names(text: str, version: int) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize("text", ["", "v", "three", "0", "-1", "v1.2"])
def test_anything_else_is_not_a_version(text: str) -> None:
    with pytest.raises(IndexVersionError):
        parse_version(text)
