"""Admin API for releases (role ``admin``): what each app serves, shadow, canary, abort, rollback, promote.

Mirrors ``keel release``. Releases are operator-level, not per tenant: a release
serves every tenant of an app, so an admin of any tenant acts on the whole
service, and the audit records are written with tenant ``"*"`` and the admin's
principal id as actor (read them with ``keel audit export --action release.*``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from keel.errors import InvalidRequest, NotFound
from keel.releases.registry import ReleaseState, Stage
from keel.runtime import Runtime
from keel.server.deps import require, runtime_of
from keel.server.schemas import ErrorEnvelope

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/releases")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope},
    401: {"model": ErrorEnvelope},
    403: {"model": ErrorEnvelope},
    404: {"model": ErrorEnvelope},
    409: {"model": ErrorEnvelope},
}


class CandidateStart(BaseModel):
    """A candidate release and its share (of requests copied for a shadow, of users for a canary)."""

    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(min_length=1, max_length=128)
    share: float = Field(description="Above 0 and at most 1.")


class Reason(BaseModel):
    """Why, for the audit log."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=1000)


class Promotion(BaseModel):
    """A candidate to promote through the eval gate; ``force`` needs a ``reason``."""

    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(min_length=1, max_length=128)
    force: bool = False
    reason: str | None = Field(None, max_length=1000)


def _check_app(runtime: Runtime, app: str) -> None:
    if app not in {a.name for a in runtime.contract.apps}:
        known = ", ".join(a.name for a in runtime.contract.apps)
        raise NotFound(f"No app {app!r} in the contract; declared: {known}.")


@router.get("", responses=_ERRORS, summary="The contract's releases and what each app serves")
async def list_releases(request: Request) -> dict[str, Any]:
    """Every declared release and every app's state (current, candidate, history)."""
    require(request, "admin")
    runtime = runtime_of(request)
    states = await asyncio.to_thread(runtime.releases.states)
    return {
        "releases": [r.model_dump() for r in runtime.contract.releases],
        "apps": [s.to_dict() for s in states],
    }


async def _start(request: Request, app: str, body: CandidateStart, stage: Stage) -> dict[str, Any]:
    admin = require(request, "admin")
    runtime = runtime_of(request)
    _check_app(runtime, app)
    state: ReleaseState = await asyncio.to_thread(
        runtime.releases.start, app, body.candidate, stage=stage, share=body.share, actor=admin.id
    )
    return state.to_dict()


@router.post("/{app}/shadow", responses=_ERRORS, summary="Copy a share of the app's requests to a candidate")
async def start_shadow(app: str, body: CandidateStart, request: Request) -> dict[str, Any]:
    """Make ``candidate`` the app's shadow (its answers are never returned)."""
    return await _start(request, app, body, "shadow")


@router.post("/{app}/canary", responses=_ERRORS, summary="Serve a sticky share of the app's users with a candidate")
async def start_canary(app: str, body: CandidateStart, request: Request) -> dict[str, Any]:
    """Make ``candidate`` the app's canary; the guard in ``keel serve`` rolls it back on a breach."""
    return await _start(request, app, body, "canary")


@router.post("/{app}/abort", responses=_ERRORS, summary="End the app's shadow or canary")
async def abort(app: str, request: Request, body: Reason | None = None) -> dict[str, Any]:
    """End the candidate without promoting it."""
    admin = require(request, "admin")
    runtime = runtime_of(request)
    _check_app(runtime, app)
    reason = (body or Reason()).reason or "aborted by an operator"
    state = await asyncio.to_thread(runtime.releases.stop, app, actor=admin.id, reason=reason)
    return state.to_dict()


@router.post("/{app}/rollback", responses=_ERRORS, summary="Restore the release that served the app before")
async def rollback(app: str, request: Request, body: Reason | None = None) -> dict[str, Any]:
    """Restore the previous release in one step."""
    admin = require(request, "admin")
    runtime = runtime_of(request)
    _check_app(runtime, app)
    state = await asyncio.to_thread(runtime.releases.rollback, app, actor=admin.id, reason=(body or Reason()).reason)
    return state.to_dict()


@router.post("/{app}/promote", responses=_ERRORS, summary="Promote a candidate through the eval gate")
async def promote(app: str, body: Promotion, request: Request) -> dict[str, Any]:
    """Gate ``candidate`` against the current release and promote it (409 ``gate_failed`` on a regression)."""
    from keel.releases.gate import promote_release  # the gate imports the eval runner, which imports the server

    admin = require(request, "admin")
    runtime = runtime_of(request)
    _check_app(runtime, app)
    if body.force and not (body.reason or "").strip():
        raise InvalidRequest("Forcing a promotion needs a reason.", code="invalid_parameter")
    state, result = await promote_release(
        runtime, app=app, candidate=body.candidate, actor=admin.id, force_reason=body.reason if body.force else None
    )
    return {"state": state.to_dict(), "gate": result.to_dict()}
