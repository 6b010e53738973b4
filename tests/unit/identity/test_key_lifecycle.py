"""Keys: scopes narrow roles, apps limit a key, expiry and rotation, and every change is audited."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.audit import AuditLog
from keel.errors import AuthError
from keel.identity import Actor, KeyAdmin, KeyStore, Principal
from keel.policy.pii import redact
from tests.support.database import database_at


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[tuple[KeyAdmin, KeyStore, AuditLog]]:
    db = database_at(tmp_path / "k.db")
    keys = KeyStore(db)
    audit = AuditLog(db, redact=redact)
    yield KeyAdmin(keys, audit), keys, audit
    audit.close()
    db.close()


CLI = Actor(id="cli:ops", tenant=None)


def test_scopes_narrow_what_roles_grant() -> None:
    full = Principal.of(id="a", tenant="t", groups=[], roles=["admin"])
    narrowed = Principal.of(id="a", tenant="t", groups=[], roles=["admin"], scopes=["ask"])
    assert full.can("admin") and full.is_admin
    assert narrowed.can("ask") and not narrowed.can("admin") and not narrowed.is_admin
    assert not Principal.of(id="u", tenant="t", groups=[], roles=["user"], scopes=["admin"]).can("admin")


def test_tenant_qualified_acl_entries_match_only_that_tenant() -> None:
    acme = Principal.of(id="a", tenant="acme", groups=["hr"], roles=["user"])
    globex = Principal.of(id="b", tenant="globex", groups=["hr"], roles=["user"])
    assert "acme/hr" in acme.acl_groups and "acme/hr" not in globex.acl_groups


def test_an_expired_key_is_refused(admin: tuple[KeyAdmin, KeyStore, AuditLog]) -> None:
    _, keys, _ = admin
    created = keys.create(principal_id="p", tenant="t", groups=[], roles=["user"], expires_at=time.time() + 0.2)
    assert keys.authenticate(created.secret).id == "p"
    time.sleep(0.3)
    with pytest.raises(AuthError) as info:
        keys.authenticate(created.secret)
    assert info.value.details["code_detail"] == "expired_api_key"


def test_rotation_gives_a_new_key_and_ends_the_old_one_after_the_grace(
    admin: tuple[KeyAdmin, KeyStore, AuditLog],
) -> None:
    key_admin, keys, audit = admin
    old = key_admin.create(CLI, principal_id="p", tenant="t", groups=["hr"], roles=["user"], apps=["hr-helpdesk"])
    new = key_admin.rotate(CLI, old.record.key_id, grace_s=0)
    principal = keys.authenticate(new.secret)
    assert principal.groups == old.record.principal.groups and principal.apps == frozenset({"hr-helpdesk"})
    with pytest.raises(AuthError, match="replacement"):
        keys.authenticate(old.secret)
    key_admin.revoke(CLI, new.record.key_id)
    with pytest.raises(AuthError, match="revoked"):
        keys.authenticate(new.secret)
    assert [r.action for r in audit.records()] == ["key.create", "key.rotate", "key.revoke"]
    assert audit.verify().ok


def test_a_tenant_admin_cannot_touch_another_tenants_keys(admin: tuple[KeyAdmin, KeyStore, AuditLog]) -> None:
    key_admin, _, _ = admin
    theirs = key_admin.create(CLI, principal_id="p", tenant="globex", groups=[], roles=["user"])
    acme_admin = Actor(id="ada", tenant="acme")
    with pytest.raises(KeyError):
        key_admin.revoke(acme_admin, theirs.record.key_id)
    with pytest.raises(ValueError, match="own tenant"):
        key_admin.create(acme_admin, principal_id="x", tenant="globex", groups=[], roles=["user"])
    assert key_admin.list(acme_admin) == []


def test_unknown_scopes_are_rejected(admin: tuple[KeyAdmin, KeyStore, AuditLog]) -> None:
    _, keys, _ = admin
    with pytest.raises(ValueError, match="scope"):
        keys.create(principal_id="p", tenant="t", groups=[], roles=["user"], scopes=["everything"])
