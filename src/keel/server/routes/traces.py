"""GET /v1/traces and /v1/traces/{request_id}: your own requests; admins see their tenant's."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from keel.errors import NotFound
from keel.server.deps import require, runtime_of
from keel.server.schemas import ErrorEnvelope

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/traces", summary="Recent traces you may see")
async def list_traces(request: Request, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """Newest first: your own requests, or (role admin) your tenant's."""
    principal = require(request, "traces:read")
    store = runtime_of(request).traces
    records = await asyncio.to_thread(
        store.recent,
        tenant=principal.tenant,
        principal_id=None if principal.is_admin else principal.id,
        limit=limit,
    )
    return {"object": "list", "data": [r.summary() for r in records]}


@router.get(
    "/v1/traces/{request_id}",
    responses={404: {"model": ErrorEnvelope}},
    summary="One request's trace: every stage with its timing and decision",
)
async def get_trace(request_id: str, request: Request) -> dict[str, Any]:
    """The trace of ``request_id`` if it is yours (or your tenant's, for an admin)."""
    principal = require(request, "traces:read")
    record = await asyncio.to_thread(runtime_of(request).traces.get, request_id)
    visible = (
        record is not None
        and record.tenant == principal.tenant
        and (principal.is_admin or record.principal_id == principal.id)
    )
    if record is None or not visible:
        raise NotFound(f"No trace {request_id!r} that you may see.")
    return {**record.summary(), **record.data}
