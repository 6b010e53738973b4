"""API keys: created once, shown once, stored hashed, revocable.

A key reads ``keel_<key id>_<secret>``. The key id is stored in clear so a key can
be found and named in listings; only the SHA-256 of the 256-bit random secret is
stored, and it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from keel.errors import AuthError
from keel.identity.principal import ROLES, Principal, check_identifier
from keel.store import Database

__all__ = ["ApiKeyRecord", "CreatedKey", "KeyStore"]

_PREFIX = "keel_"


@dataclass(frozen=True, kw_only=True)
class ApiKeyRecord:
    """A stored key, without its secret."""

    key_id: str
    principal: Principal
    label: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, kw_only=True)
class CreatedKey:
    """A newly created key: ``secret`` is the full key, shown once."""

    record: ApiKeyRecord
    secret: str


class KeyStore:
    """API keys in the project database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        *,
        principal_id: str,
        tenant: str,
        groups: list[str],
        roles: list[str],
        label: str = "",
    ) -> CreatedKey:
        """Create a key for a principal. Raises ``ValueError`` on bad names or roles."""
        check_identifier("principal id", principal_id)
        check_identifier("tenant", tenant)
        for group in groups:
            check_identifier("group", group)
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {sorted(ROLES)}")
        if not roles:
            raise ValueError("a key needs at least one role")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, secret_hash, principal_id, tenant, groups_json, roles_json, label,"
                " created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    _hash(secret),
                    principal_id,
                    tenant,
                    json.dumps(sorted(set(groups))),
                    json.dumps(sorted(set(roles))),
                    label,
                    now,
                ),
            )
        principal = Principal.of(id=principal_id, tenant=tenant, groups=groups, roles=roles)
        record = ApiKeyRecord(key_id=key_id, principal=principal, label=label, created_at=now, revoked_at=None)
        return CreatedKey(record=record, secret=f"{_PREFIX}{key_id}_{secret}")

    def authenticate(self, presented: str) -> Principal:
        """The principal of a presented key; raises :class:`AuthError` if it is not valid."""
        key_id, secret = _split(presented)
        row = (
            self._db.connection()
            .execute(
                "SELECT secret_hash, principal_id, tenant, groups_json, roles_json, revoked_at FROM api_keys"
                " WHERE key_id = ?",
                (key_id,),
            )
            .fetchone()
        )
        if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
            raise AuthError("The API key is not valid.", code_detail="invalid_api_key")
        if row["revoked_at"] is not None:
            raise AuthError("The API key has been revoked.", code_detail="revoked_api_key")
        return Principal.of(
            id=row["principal_id"],
            tenant=row["tenant"],
            groups=json.loads(row["groups_json"]),
            roles=json.loads(row["roles_json"]),
        )

    def list(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        """Stored keys, newest first."""
        sql = "SELECT * FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        rows = self._db.connection().execute(sql + " ORDER BY created_at DESC").fetchall()
        return [
            ApiKeyRecord(
                key_id=row["key_id"],
                principal=Principal.of(
                    id=row["principal_id"],
                    tenant=row["tenant"],
                    groups=json.loads(row["groups_json"]),
                    roles=json.loads(row["roles_json"]),
                ),
                label=row["label"],
                created_at=row["created_at"],
                revoked_at=row["revoked_at"],
            )
            for row in rows
        ]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id (or full key); returns whether an active key was revoked."""
        if key_id.startswith(_PREFIX):
            key_id = _split(key_id)[0]
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id)
            )
        return cursor.rowcount == 1


def _split(presented: str) -> tuple[str, str]:
    if not presented.startswith(_PREFIX):
        raise AuthError("The API key is not valid.", code_detail="invalid_api_key")
    key_id, sep, secret = presented[len(_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        raise AuthError("The API key is not valid.", code_detail="invalid_api_key")
    return key_id, secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
