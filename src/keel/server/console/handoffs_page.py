"""The hand-off queue page: the tenant's hand-offs, answered or closed from a form.

The rules are the JSON API's (:mod:`keel.server.routes.handoffs`): reviewers and
admins whose key holds the ``handoffs`` scope see and handle their own tenant's
hand-offs; another tenant's hand-off is not found. The question shown is the one
stored, redacted of PII when the hand-off was queued. Every answer and close is
written to the audit log (``handoff.answer``, ``handoff.close``) before the redirect.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal, cast

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel.durations import format_age
from keel.errors import InvalidRequest
from keel.identity import Principal
from keel.ops.handoffs import answer_handoff, close_handoff
from keel.server.console.sessions import ConsoleSession
from keel.server.console.web import SignInRequired, form_session, page_session, redirect, render
from keel.server.deps import runtime_of

__all__ = ["STATUSES", "router"]

Status = Literal["open", "answered", "closed"]
STATUSES: tuple[str, ...] = ("open", "answered", "closed", "all")
"""The status filter's choices (``all``: no filter)."""

router = APIRouter(prefix="/console/handoffs", include_in_schema=False)


def _handler(request: Request, session: ConsoleSession) -> Principal:
    """The session's principal if its key may handle hand-offs (the JSON API's rule)."""
    if not session.principal.can("handoffs"):
        raise SignInRequired(request.url.path, "This key may not handle hand-offs; sign in with a reviewer's key.")
    return session.principal


def _back(status: str | None) -> str:
    return f"/console/handoffs?status={status}" if status in STATUSES else "/console/handoffs"


@router.get("")
async def handoffs(request: Request, status: str = "open") -> Response:
    """The tenant's hand-offs with one status (default open), newest first."""
    session = page_session(request, role="reviewer")
    principal = _handler(request, session)
    if status not in STATUSES:
        raise InvalidRequest(f"status is one of {', '.join(STATUSES)}.", code="invalid_parameter")
    wanted = None if status == "all" else cast(Status, status)
    items = await asyncio.to_thread(runtime_of(request).handoffs.list, tenant=principal.tenant, status=wanted)
    return render(
        request,
        "handoffs.html",
        session=session,
        title="Hand-offs",
        items=items,
        status=status,
        statuses=STATUSES,
        now=time.time(),
        age=format_age,
    )


@router.post("/{handoff_id}/answer")
async def answer(request: Request, handoff_id: str) -> Response:
    """Answer an open hand-off (the form's ``answer``), then back to the queue."""
    session, fields = await form_session(request, role="reviewer")
    principal = _handler(request, session)
    runtime = runtime_of(request)
    back = _back(fields.get("status"))
    try:
        await asyncio.to_thread(
            answer_handoff, runtime.handoffs, runtime.audit, principal, handoff_id, fields.get("answer", "")
        )
    except InvalidRequest as exc:
        return redirect(back, flash=exc.message, error=True)
    return redirect(back, flash=f"Answered {handoff_id}.")


@router.post("/{handoff_id}/close")
async def close(request: Request, handoff_id: str) -> Response:
    """Close a hand-off, answered or not, then back to the queue."""
    session, fields = await form_session(request, role="reviewer")
    principal = _handler(request, session)
    runtime = runtime_of(request)
    back = _back(fields.get("status"))
    try:
        await asyncio.to_thread(close_handoff, runtime.handoffs, runtime.audit, principal, handoff_id)
    except InvalidRequest as exc:
        return redirect(back, flash=exc.message, error=True)
    return redirect(back, flash=f"Closed {handoff_id}.")
