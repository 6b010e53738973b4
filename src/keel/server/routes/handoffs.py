"""The hand-off queue: GET /v1/handoffs, GET /v1/handoffs/{id}, POST .../answer and .../close.

Reviewers and admins see and handle their tenant's hand-offs; anyone else sees only
their own, read-only.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from keel.errors import ForbiddenError, NotFound
from keel.identity import Principal
from keel.ops.handoffs import answer_handoff as audited_answer
from keel.ops.handoffs import close_handoff as audited_close
from keel.server.deps import principal_of, runtime_of
from keel.server.schemas import ErrorEnvelope, HandoffAnswer

__all__ = ["router"]

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope},
    403: {"model": ErrorEnvelope},
    404: {"model": ErrorEnvelope},
}


def _is_reviewer(principal: Principal) -> bool:
    return bool(principal.roles & {"reviewer", "admin"}) and principal.can("handoffs")


@router.get("/v1/handoffs", responses=_ERRORS, summary="Hand-offs you may see")
async def list_handoffs(
    request: Request,
    status: Literal["open", "answered", "closed"] | None = Query(None),
    limit: int = Query(100, ge=1, le=500),
) -> dict[str, Any]:
    """Your tenant's hand-offs (reviewers, admins) or your own, newest first."""
    principal = principal_of(request)
    store = runtime_of(request).handoffs
    items = await asyncio.to_thread(
        store.list,
        tenant=principal.tenant,
        principal_id=None if _is_reviewer(principal) else principal.id,
        status=status,
        limit=limit,
    )
    return {"object": "list", "data": [h.to_dict() for h in items]}


@router.get("/v1/handoffs/{handoff_id}", responses=_ERRORS, summary="One hand-off")
async def get_handoff(handoff_id: str, request: Request) -> dict[str, Any]:
    """A hand-off of your tenant (reviewers, admins) or your own."""
    principal = principal_of(request)
    handoff = await asyncio.to_thread(runtime_of(request).handoffs.get, handoff_id, tenant=principal.tenant)
    if not _is_reviewer(principal) and handoff.principal_id != principal.id:
        raise NotFound(f"No hand-off {handoff_id!r} that you may see.")
    return handoff.to_dict()


@router.post("/v1/handoffs/{handoff_id}/answer", responses=_ERRORS, summary="Answer a hand-off (reviewer)")
async def answer_handoff(handoff_id: str, body: HandoffAnswer, request: Request) -> dict[str, Any]:
    """Record the answer (audited); the asker sees it in their hand-offs."""
    principal = _reviewer(request)
    runtime = runtime_of(request)
    handoff = await asyncio.to_thread(
        audited_answer, runtime.handoffs, runtime.audit, principal, handoff_id, body.answer
    )
    return handoff.to_dict()


@router.post("/v1/handoffs/{handoff_id}/close", responses=_ERRORS, summary="Close a hand-off (reviewer)")
async def close_handoff(handoff_id: str, request: Request) -> dict[str, Any]:
    """Close it, answered or not (audited)."""
    principal = _reviewer(request)
    runtime = runtime_of(request)
    handoff = await asyncio.to_thread(audited_close, runtime.handoffs, runtime.audit, principal, handoff_id)
    return handoff.to_dict()


def _reviewer(request: Request) -> Principal:
    principal = principal_of(request)
    if not _is_reviewer(principal):
        raise ForbiddenError("Only a reviewer or an admin may handle hand-offs.")
    return principal
