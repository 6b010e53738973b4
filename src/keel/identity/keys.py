"""API keys: created once, shown once, stored hashed, scoped, expiring, rotatable, revocable.

A key reads ``keel_<key id>_<secret>``. The key id is stored in clear so a key can
be found and named in listings; only the SHA-256 of the 256-bit random secret is
stored, and it is compared in constant time. Rotation issues a new key for the same
principal and lets the old one work for a grace period, so clients can switch
without downtime.

Keys that authenticated are remembered for :data:`CACHE_TTL_S` so that a busy key is
not read from the database on every request (:meth:`KeyStore.cached`): a revocation,
rotation or expiry made by another process takes effect within that time, and one made
through this store at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from keel.contract import EVERYONE
from keel.errors import AuthError
from keel.identity.principal import ROLES, SCOPES, Principal, check_identifier
from keel.store import Database

__all__ = ["ApiKeyRecord", "CreatedKey", "KeyStore"]

_PREFIX = "keel_"
CACHE_TTL_S = 1.0
"""How long a successful key check is reused: the longest a revocation elsewhere goes unseen."""
_CACHE_MAX = 10_000


@dataclass(frozen=True, kw_only=True)
class ApiKeyRecord:
    """A stored key, without its secret."""

    key_id: str
    principal: Principal
    label: str
    created_at: float
    revoked_at: float | None
    expires_at: float | None = None
    rotated_to: str | None = None

    def state(self, now: float | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now if now is not None else time.time()):
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, object]:
        """The listing form (no secret)."""
        p = self.principal
        return {
            "key_id": self.key_id,
            "principal": p.id,
            "tenant": p.tenant,
            "groups": sorted(p.groups),
            "roles": sorted(p.roles),
            "scopes": sorted(p.scopes),
            "apps": sorted(p.apps),
            "label": self.label,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "rotated_to": self.rotated_to,
            "state": self.state(),
        }


@dataclass(frozen=True, kw_only=True)
class CreatedKey:
    """A newly created key: ``secret`` is the full key, shown once."""

    record: ApiKeyRecord
    secret: str


class KeyStore:
    """API keys in the project database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, tuple[str, ApiKeyRecord, float]] = {}
        """key id -> (secret hash, record, monotonic time the entry ends)."""

    def create(
        self,
        *,
        principal_id: str,
        tenant: str,
        groups: list[str],
        roles: list[str],
        label: str = "",
        scopes: list[str] | None = None,
        apps: list[str] | None = None,
        expires_at: float | None = None,
    ) -> CreatedKey:
        """Create a key for a principal. Raises ``ValueError`` on bad names, roles or scopes."""
        check_identifier("principal id", principal_id)
        check_identifier("tenant", tenant)
        for group in groups:
            check_identifier("group", group)
        for app in apps or []:
            check_identifier("app", app)
        unknown = set(roles) - ROLES
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {sorted(ROLES)}")
        if not roles:
            raise ValueError("a key needs at least one role")
        bad_scopes = set(scopes or []) - SCOPES
        if bad_scopes:
            raise ValueError(f"unknown scope(s) {sorted(bad_scopes)}; scopes are {sorted(SCOPES)}")
        now = time.time()
        if expires_at is not None and expires_at <= now:
            raise ValueError("the expiry must be in the future")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        principal = Principal.of(
            id=principal_id,
            tenant=tenant,
            groups=groups,
            roles=roles,
            scopes=scopes or [],
            apps=apps or [],
            credential=f"key:{key_id}",
        )
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, secret_hash, principal_id, tenant, groups_json, roles_json, label,"
                " created_at, expires_at, scopes_json, apps_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    _hash(secret),
                    principal_id,
                    tenant,
                    json.dumps(sorted(set(groups))),
                    json.dumps(sorted(set(roles))),
                    label,
                    now,
                    expires_at,
                    json.dumps(sorted(set(scopes or []))),
                    json.dumps(sorted(set(apps or []))),
                ),
            )
        record = ApiKeyRecord(
            key_id=key_id, principal=principal, label=label, created_at=now, revoked_at=None, expires_at=expires_at
        )
        return CreatedKey(record=record, secret=f"{_PREFIX}{key_id}_{secret}")

    def authenticate(self, presented: str) -> Principal:
        """The principal of a presented key; raises :class:`AuthError` if it is not valid."""
        key_id, secret = _split(presented)
        read_at = time.monotonic()
        row = self._db.connection().execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
            raise AuthError("The API key is not valid.", code_detail="invalid_api_key")
        record = _record(row)
        state = record.state()
        if state == "revoked":
            raise AuthError("The API key has been revoked.", code_detail="revoked_api_key")
        if state == "expired":
            hint = " It was rotated: use its replacement." if record.rotated_to else ""
            raise AuthError("The API key has expired." + hint, code_detail="expired_api_key")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key_id] = (row["secret_hash"], record, read_at + CACHE_TTL_S)
        return record.principal

    def cached(self, presented: str) -> Principal | None:
        """The principal of a key that passed :meth:`authenticate` less than :data:`CACHE_TTL_S` ago.

        ``None`` when the key is not in the cache (or no longer active, or the secret does not
        match): call :meth:`authenticate`, which gives the precise error. Never reads the database.
        """
        if not presented.startswith(_PREFIX):
            return None
        key_id, sep, secret = presented[len(_PREFIX) :].partition("_")
        entry = self._cache.get(key_id)
        if entry is None or not sep or not secret:
            return None
        secret_hash, record, until = entry
        if time.monotonic() >= until or record.state() != "active":
            self._cache.pop(key_id, None)
            return None
        if not hmac.compare_digest(secret_hash, _hash(secret)):
            return None
        return record.principal

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """One key by id, without its secret."""
        row = self._db.connection().execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return _record(row) if row is not None else None

    def list(self, *, include_revoked: bool = False, tenant: str | None = None) -> list[ApiKeyRecord]:
        """Stored keys, newest first, optionally of one tenant."""
        sql = "SELECT * FROM api_keys WHERE 1 = 1"
        args: list[object] = []
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        rows = self._db.connection().execute(sql + " ORDER BY created_at DESC", args).fetchall()
        return [_record(row) for row in rows]

    def rotate(self, key_id: str, *, grace_s: float = 86400.0, expires_at: float | None = None) -> CreatedKey:
        """A new key for the same principal; the old one keeps working for ``grace_s`` seconds.

        Raises ``KeyError`` if no active key has that id.
        """
        if key_id.startswith(_PREFIX):
            key_id = _split(key_id)[0]
        old = self.get(key_id)
        if old is None or old.state() != "active":
            raise KeyError(key_id)
        p = old.principal
        created = self.create(
            principal_id=p.id,
            tenant=p.tenant,
            groups=sorted(p.groups - {EVERYONE}),
            roles=sorted(p.roles),
            label=old.label,
            scopes=sorted(p.scopes),
            apps=sorted(p.apps),
            expires_at=expires_at if expires_at is not None else old.expires_at,
        )
        ends = time.time() + max(grace_s, 0.0)
        if old.expires_at is not None:
            ends = min(ends, old.expires_at)
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE api_keys SET expires_at = ?, rotated_to = ? WHERE key_id = ?",
                (ends, created.record.key_id, key_id),
            )
        self._cache.pop(key_id, None)
        return created

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id (or full key); returns whether an active key was revoked."""
        if key_id.startswith(_PREFIX):
            key_id = _split(key_id)[0]
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id)
            )
        self._cache.pop(key_id, None)
        return cursor.rowcount == 1


def _record(row: Any) -> ApiKeyRecord:
    key_id = row["key_id"]
    return ApiKeyRecord(
        key_id=key_id,
        principal=Principal.of(
            id=row["principal_id"],
            tenant=row["tenant"],
            groups=json.loads(row["groups_json"]),
            roles=json.loads(row["roles_json"]),
            scopes=json.loads(row["scopes_json"]),
            apps=json.loads(row["apps_json"]),
            credential=f"key:{key_id}",
        ),
        label=row["label"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        expires_at=row["expires_at"],
        rotated_to=row["rotated_to"],
    )


def _split(presented: str) -> tuple[str, str]:
    if not presented.startswith(_PREFIX):
        raise AuthError("The API key is not valid.", code_detail="invalid_api_key")
    key_id, sep, secret = presented[len(_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        raise AuthError("The API key is not valid.", code_detail="invalid_api_key")
    return key_id, secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
