"""Admin API (role ``admin``, within the caller's tenant): keys and the audit log.

Mirrors ``keel keys`` and ``keel audit``; every change is audited with the admin as actor.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.errors import InvalidRequest, NotFound
from keel.identity import Actor, Principal
from keel.server.deps import require, runtime_of
from keel.server.schemas import ErrorEnvelope

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope},
    401: {"model": ErrorEnvelope},
    403: {"model": ErrorEnvelope},
    404: {"model": ErrorEnvelope},
}


class KeyCreate(BaseModel):
    """A key to create in the admin's tenant."""

    model_config = ConfigDict(extra="forbid")

    principal: str = Field(min_length=1, max_length=128)
    groups: list[str] = Field(default_factory=list, max_length=256)
    roles: list[str] = Field(default_factory=lambda: ["user"], min_length=1, max_length=4)
    scopes: list[str] = Field(default_factory=list, max_length=16)
    apps: list[str] = Field(default_factory=list, max_length=64)
    label: str = Field("", max_length=200)
    expires_in_days: float | None = Field(None, gt=0, le=3650)


class KeyRotate(BaseModel):
    """How long the old key keeps working."""

    model_config = ConfigDict(extra="forbid")

    grace_hours: float = Field(24.0, ge=0, le=24 * 90)


def _actor(principal: Principal) -> Actor:
    return Actor(id=principal.id, tenant=principal.tenant)


@router.get("/keys", responses=_ERRORS, summary="Keys of your tenant (never their secrets)")
async def list_keys(request: Request, include_revoked: bool = Query(False)) -> dict[str, Any]:
    """Keys of the admin's tenant, newest first."""
    admin = require(request, "admin")
    records = await asyncio.to_thread(
        runtime_of(request).key_admin.list, _actor(admin), include_revoked=include_revoked
    )
    return {"object": "list", "data": [r.to_dict() for r in records]}


@router.post("/keys", status_code=201, responses=_ERRORS, summary="Create a key (the secret is shown once)")
async def create_key(body: KeyCreate, request: Request) -> dict[str, Any]:
    """Create a key in the admin's tenant."""
    admin = require(request, "admin")
    try:
        created = await asyncio.to_thread(
            runtime_of(request).key_admin.create,
            _actor(admin),
            principal_id=body.principal,
            tenant=admin.tenant,
            groups=body.groups,
            roles=body.roles,
            label=body.label,
            scopes=body.scopes,
            apps=body.apps,
            expires_in_s=body.expires_in_days * 86400 if body.expires_in_days else None,
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc), code="invalid_parameter") from None
    return {**created.record.to_dict(), "key": created.secret}


@router.post("/keys/{key_id}/rotate", responses=_ERRORS, summary="Replace a key; the old one works for a grace period")
async def rotate_key(key_id: str, request: Request, body: KeyRotate | None = None) -> dict[str, Any]:
    """A new key for the same principal."""
    admin = require(request, "admin")
    grace = (body or KeyRotate()).grace_hours * 3600
    try:
        created = await asyncio.to_thread(runtime_of(request).key_admin.rotate, _actor(admin), key_id, grace_s=grace)
    except KeyError:
        raise NotFound(f"No active key {key_id!r} in your tenant.") from None
    return {**created.record.to_dict(), "key": created.secret, "replaces": key_id}


@router.delete("/keys/{key_id}", responses=_ERRORS, summary="Revoke a key at once")
async def revoke_key(key_id: str, request: Request) -> dict[str, Any]:
    """Revoke a key of the admin's tenant."""
    admin = require(request, "admin")
    try:
        await asyncio.to_thread(runtime_of(request).key_admin.revoke, _actor(admin), key_id)
    except KeyError:
        raise NotFound(f"No active key {key_id!r} in your tenant.") from None
    return {"key_id": key_id, "revoked": True}


@router.get("/audit", responses=_ERRORS, summary="Audit records of your tenant")
async def audit_records(
    request: Request,
    action: str | None = Query(None, max_length=64),
    after_seq: int = Query(0, ge=0, le=2**62),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Records of the admin's tenant in sequence order (page with ``after_seq``)."""
    admin = require(request, "admin")
    log = runtime_of(request).audit

    def fetch() -> list[dict[str, Any]]:
        return [r.to_dict() for r in log.records(tenant=admin.tenant, action=action, after_seq=after_seq, limit=limit)]

    return {"object": "list", "data": await asyncio.to_thread(fetch)}
