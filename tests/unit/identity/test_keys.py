"""API keys: shown once, stored hashed, revocable, never authenticating when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import AuthError
from keel.identity import KeyStore
from keel.store import Database


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(Database(tmp_path / "keel.db"))


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
