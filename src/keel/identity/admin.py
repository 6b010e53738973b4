"""Key administration with an audit record for every change.

Both the CLI (an operator on the machine, acting for every tenant) and the admin API
(an ``admin`` principal, acting within its own tenant) go through :class:`KeyAdmin`,
so every created, rotated or revoked key lands in the audit log the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from keel.audit import AuditEvent, AuditLog
from keel.identity.keys import ApiKeyRecord, CreatedKey, KeyStore

__all__ = ["Actor", "KeyAdmin"]


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who performs an administrative action; ``tenant`` ``None`` means every tenant (the CLI)."""

    id: str
    tenant: str | None


class KeyAdmin:
    """Creates, rotates, revokes and lists keys, audited, within the actor's tenant."""

    def __init__(self, keys: KeyStore, audit: AuditLog) -> None:
        self._keys = keys
        self._audit = audit

    def create(
        self,
        actor: Actor,
        *,
        principal_id: str,
        tenant: str,
        groups: list[str],
        roles: list[str],
        label: str = "",
        scopes: list[str] | None = None,
        apps: list[str] | None = None,
        expires_in_s: float | None = None,
    ) -> CreatedKey:
        """Create a key; ``ValueError`` on bad input or a tenant outside the actor's."""
        if actor.tenant is not None and tenant != actor.tenant:
            raise ValueError(f"you may create keys only in your own tenant {actor.tenant!r}")
        expires_at = time.time() + expires_in_s if expires_in_s is not None else None
        created = self._keys.create(
            principal_id=principal_id,
            tenant=tenant,
            groups=groups,
            roles=roles,
            label=label,
            scopes=scopes,
            apps=apps,
            expires_at=expires_at,
        )
        self._audit.record_now(
            AuditEvent(
                action="key.create",
                actor=actor.id,
                tenant=tenant,
                subject=created.record.key_id,
                data={
                    "principal": principal_id,
                    "groups": sorted(groups),
                    "roles": sorted(roles),
                    "scopes": sorted(scopes or []),
                    "apps": sorted(apps or []),
                    "expires_at": expires_at,
                },
            )
        )
        return created

    def rotate(self, actor: Actor, key_id: str, *, grace_s: float) -> CreatedKey:
        """Replace a key; the old one works for ``grace_s`` more seconds. ``KeyError`` if not found."""
        record = self._visible(actor, key_id)
        created = self._keys.rotate(record.key_id, grace_s=grace_s)
        self._audit.record_now(
            AuditEvent(
                action="key.rotate",
                actor=actor.id,
                tenant=record.principal.tenant,
                subject=record.key_id,
                data={"replacement": created.record.key_id, "grace_s": grace_s},
            )
        )
        return created

    def revoke(self, actor: Actor, key_id: str) -> None:
        """Revoke a key at once. ``KeyError`` if no such active key is visible to the actor."""
        record = self._visible(actor, key_id)
        if not self._keys.revoke(record.key_id):
            raise KeyError(key_id)
        self._audit.record_now(
            AuditEvent(action="key.revoke", actor=actor.id, tenant=record.principal.tenant, subject=record.key_id)
        )

    def list(self, actor: Actor, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        """Keys the actor may see."""
        return self._keys.list(include_revoked=include_revoked, tenant=actor.tenant)

    def _visible(self, actor: Actor, key_id: str) -> ApiKeyRecord:
        if key_id.startswith("keel_"):
            key_id = key_id[len("keel_") :].partition("_")[0]
        record = self._keys.get(key_id)
        if record is None or (actor.tenant is not None and record.principal.tenant != actor.tenant):
            raise KeyError(key_id)
        return record
