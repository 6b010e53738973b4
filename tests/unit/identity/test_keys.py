"""API keys: shown once, stored hashed, revocable, never authenticating when wrong; checks cached briefly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keel.errors import AuthError
from keel.identity import KeyStore
from keel.identity import keys as keys_module
from tests.support.database import database_at, postgres_selected


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(database_at(tmp_path / "keel.db"))


def test_created_key_authenticates_as_its_principal_with_everyone(store: KeyStore) -> None:
    created = store.create(principal_id="hana", tenant="acme", groups=["hr"], roles=["user"])
    principal = store.authenticate(created.secret)
    assert principal.id == "hana"
    assert principal.tenant == "acme"
    assert principal.groups == {"hr", "everyone"}
    assert principal.roles == {"user"}


def test_only_a_hash_of_the_secret_is_stored(store: KeyStore, tmp_path: Path) -> None:
    created = store.create(principal_id="hana", tenant="acme", groups=[], roles=["user"])
    secret_part = created.secret.rsplit("_", 1)[-1]
    if postgres_selected():
        rows = database_at(tmp_path / "keel.db").connection().execute("SELECT * FROM api_keys").fetchall()
        raw = repr([tuple(r) for r in rows]).encode()
    else:
        raw = (tmp_path / "keel.db").read_bytes()
    assert secret_part.encode() not in raw
    assert created.secret.encode() not in raw


@pytest.mark.parametrize(
    "presented",
    ["", "nonsense", "keel_", "keel_abc", "keel_000000000000_wrong", "Bearer keel_x_y"],
)
def test_malformed_or_unknown_keys_are_rejected(store: KeyStore, presented: str) -> None:
    store.create(principal_id="hana", tenant="acme", groups=[], roles=["user"])
    with pytest.raises(AuthError):
        store.authenticate(presented)


def test_wrong_secret_for_a_real_key_id_is_rejected(store: KeyStore) -> None:
    created = store.create(principal_id="hana", tenant="acme", groups=[], roles=["user"])
    key_id = created.record.key_id
    with pytest.raises(AuthError):
        store.authenticate(f"keel_{key_id}_not-the-secret")


def test_revoked_key_no_longer_authenticates(store: KeyStore) -> None:
    created = store.create(principal_id="hana", tenant="acme", groups=[], roles=["user"])
    assert store.revoke(created.record.key_id) is True
    with pytest.raises(AuthError, match="revoked"):
        store.authenticate(created.secret)
    assert store.revoke(created.record.key_id) is False
    assert store.list() == []
    assert len(store.list(include_revoked=True)) == 1


def test_bad_names_and_roles_are_refused(store: KeyStore) -> None:
    with pytest.raises(ValueError, match="role"):
        store.create(principal_id="x", tenant="t", groups=[], roles=["root"])
    with pytest.raises(ValueError, match="group"):
        store.create(principal_id="x", tenant="t", groups=["bad group"], roles=["user"])
    with pytest.raises(ValueError, match="principal"):
        store.create(principal_id="", tenant="t", groups=[], roles=["user"])


def test_a_checked_key_is_reused_from_the_cache_without_the_database(store: KeyStore) -> None:
    created = store.create(principal_id="hana", tenant="acme", groups=["hr"], roles=["user"])
    assert store.cached(created.secret) is None  # never checked yet
    principal = store.authenticate(created.secret)
    assert store.cached(created.secret) == principal
    assert store.cached(f"keel_{created.record.key_id}_not-the-secret") is None
    assert store.cached("not-a-key") is None


def test_a_revocation_or_rotation_through_the_store_empties_the_cache_at_once(store: KeyStore) -> None:
    created = store.create(principal_id="hana", tenant="acme", groups=[], roles=["user"])
    store.authenticate(created.secret)
    store.revoke(created.record.key_id)
    assert store.cached(created.secret) is None
    other = store.create(principal_id="ken", tenant="acme", groups=[], roles=["user"])
    store.authenticate(other.secret)
    store.rotate(other.record.key_id, grace_s=0)
    assert store.cached(other.secret) is None


def test_a_revocation_by_another_process_is_honoured_within_the_cache_ttl(
    store: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = store.create(principal_id="hana", tenant="acme", groups=[], roles=["user"])
    store.authenticate(created.secret)
    elsewhere = KeyStore(database_at(tmp_path / "keel.db"))  # e.g. `keel keys revoke` in another process
    assert elsewhere.revoke(created.record.key_id) is True
    assert store.cached(created.secret) is not None  # still within CACHE_TTL_S of the last check
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + keys_module.CACHE_TTL_S)
    assert store.cached(created.secret) is None
    with pytest.raises(AuthError, match="revoked"):
        store.authenticate(created.secret)
