"""POST /v1/feedback and POST /v1/outcomes: signals tied to a request's trace, tenant-scoped and audited."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.audit import AuditEvent
from keel.server.deps import principal_of, runtime_of
from keel.server.schemas import ErrorEnvelope

__all__ = ["router"]

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope},
    401: {"model": ErrorEnvelope},
    404: {"model": ErrorEnvelope},
}


class FeedbackIn(BaseModel):
    """A rating of one answer, with an optional comment and a better answer."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=4000)
    correction: str | None = Field(None, max_length=8000, description="What the answer should have been.")


class OutcomeIn(BaseModel):
    """A business signal about one request (ticket_resolved: 1, minutes_saved: 12)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    value: float = 1.0


class Recorded(BaseModel):
    """The stored signal's id."""

    id: str
    request_id: str


@router.post("/v1/feedback", status_code=201, responses=_ERRORS, summary="Rate an answer")
async def feedback(body: FeedbackIn, request: Request) -> Recorded:
    """Feedback on a request you made (or, as reviewer or admin, one of your tenant's)."""
    principal = principal_of(request)
    runtime = runtime_of(request)
    store = runtime.feedback

    def record() -> str:
        subject = store.subject(body.request_id, principal)
        feedback_id = store.add_feedback(
            subject, principal, rating=body.rating, comment=body.comment, correction=body.correction
        )
        runtime.audit.record(
            AuditEvent(
                action="feedback.create",
                actor=principal.id,
                tenant=principal.tenant,
                subject=body.request_id,
                data={"feedback_id": feedback_id, "rating": body.rating, "correction": body.correction is not None},
            )
        )
        return feedback_id

    return Recorded(id=await asyncio.to_thread(record), request_id=body.request_id)


@router.post("/v1/outcomes", status_code=201, responses=_ERRORS, summary="Record a business outcome")
async def outcome(body: OutcomeIn, request: Request) -> Recorded:
    """An outcome of a request you made (or, as reviewer or admin, one of your tenant's)."""
    principal = principal_of(request)
    runtime = runtime_of(request)
    store = runtime.feedback

    def record() -> str:
        subject = store.subject(body.request_id, principal)
        outcome_id = store.add_outcome(subject, principal, name=body.name, value=body.value)
        runtime.audit.record(
            AuditEvent(
                action="outcome.create",
                actor=principal.id,
                tenant=principal.tenant,
                subject=body.request_id,
                data={"outcome_id": outcome_id, "name": body.name, "value": body.value},
            )
        )
        return outcome_id

    return Recorded(id=await asyncio.to_thread(record), request_id=body.request_id)
