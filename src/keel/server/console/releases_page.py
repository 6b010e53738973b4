"""The Releases page: what each app serves, its candidate with live figures, and the admin's release steps.

Reviewers see, per app, the current release, the one rollback restores and the
candidate with its stage and share: for a shadow the live comparison
(:func:`~keel.releases.shadow.shadow_report`), for a canary the live verdict
(:func:`~keel.releases.canary.judge_canary`). Admins also get the forms: promote
through the eval gate and roll back (each behind a confirmation page), and abort the
candidate. The steps call the same library as the admin API, so every one is audited
by the registry (tenant ``*``, the admin as actor); the page lists the latest records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel.contract import Release
from keel.errors import GateFailed, ServiceError
from keel.releases.canary import CanaryVerdict, judge_canary
from keel.releases.registry import IMPLICIT, ReleaseState
from keel.releases.shadow import ShadowReport, shadow_report
from keel.runtime import Runtime
from keel.server.console.charts import bar_chart, meter
from keel.server.console.sessions import ConsoleSession
from keel.server.console.web import form_session, page_session, redirect, render
from keel.server.deps import runtime_of

__all__ = ["AppReleases", "app_releases", "release_history", "router"]

router = APIRouter(prefix="/console/releases", include_in_schema=False)

PAGE = "/console/releases"
HISTORY_LIMIT = 20
WORST = 5


@dataclass(frozen=True, kw_only=True)
class AppReleases:
    """One app's releases as the page shows them."""

    app: str
    state: ReleaseState
    current: Release
    previous: Release | None
    candidate: Release | None
    choices: list[str]
    """Releases an admin may promote (every declared one but the current)."""
    shadow: ShadowReport | None = None
    canary: CanaryVerdict | None = None


def label(name: str) -> str:
    """How a release name reads on the page (the implicit release is the app's own pins)."""
    return "pins (the app's own)" if name == IMPLICIT else name


def app_releases(runtime: Runtime, *, tenant: str) -> list[AppReleases]:
    """Every app's releases with the live figures of its candidate (shadow disagreements of ``tenant`` only)."""
    registry = runtime.releases
    declared = [r.name for r in runtime.contract.releases]
    apps = []
    for state in registry.states():
        app = runtime.contract.app(state.app)
        report = None
        if state.stage == "shadow" and state.candidate is not None:
            report = shadow_report(
                runtime.db, app=state.app, candidate=state.candidate, since=state.started_at, worst=10 * WORST
            )
            # Releases are operator-level, but the questions and answers of another tenant are not to be shown.
            mine = [d for d in report.disagreements if d.get("tenant") == tenant][:WORST]
            report = ShadowReport(**{**report.__dict__, "disagreements": mine})
        apps.append(
            AppReleases(
                app=state.app,
                state=state,
                current=registry.release(app, state.current),
                previous=registry.release(app, state.history[-1]) if state.history else None,
                candidate=registry.release(app, state.candidate) if state.candidate is not None else None,
                choices=[name for name in declared if name != state.current],
                shadow=report,
                canary=judge_canary(runtime.db, state, runtime.contract.rollout.canary),
            )
        )
    return apps


def release_history(runtime: Runtime, *, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """The latest release audit records, newest first."""
    return [r.to_dict() for r in runtime.audit.records(tenant="*", action="release", last=True, limit=limit)]


def _is_admin(session: ConsoleSession) -> bool:
    return "admin" in session.principal.roles


def _find(runtime: Runtime, app: str) -> AppReleases | None:
    return next((a for a in app_releases(runtime, tenant="") if a.app == app), None)


def _forbidden(request: Request, session: ConsoleSession) -> Response:
    return render(
        request,
        "release_confirm.html",
        session=session,
        title="Releases",
        status_code=403,
        kind="forbidden",
        label=label,
    )


async def _admin_form(request: Request) -> tuple[ConsoleSession, dict[str, str], Response | None]:
    """The session and fields of a release form; a refusal page for a signed-in non-admin."""
    session, fields = await form_session(request, role="reviewer")
    return session, dict(fields), None if _is_admin(session) else _forbidden(request, session)


@router.get("")
async def releases(request: Request) -> Response:
    """Every app's releases; forms for admins."""
    session = page_session(request, role="reviewer")
    runtime = runtime_of(request)
    await asyncio.to_thread(runtime.traces.flush)
    apps = await asyncio.to_thread(app_releases, runtime, tenant=session.principal.tenant)
    history = await asyncio.to_thread(release_history, runtime)
    return render(
        request,
        "releases.html",
        session=session,
        title="Releases",
        apps=apps,
        history=history,
        admin=_is_admin(session),
        policy=runtime.contract.rollout.canary,
        label=label,
        bar_chart=bar_chart,
        meter=meter,
    )


@router.post("/{app}/promote")
async def promote_confirm(app: str, request: Request) -> Response:
    """First step of a promotion: a page naming what will change, and that the eval gate runs."""
    session, fields, refused = await _admin_form(request)
    if refused:
        return refused
    runtime = runtime_of(request)
    found = await asyncio.to_thread(_find, runtime, app)
    candidate = fields.get("candidate", "")
    if found is None or candidate not in found.choices:
        return redirect(PAGE, flash=f"Nothing to promote: no release {candidate!r} for app {app!r}.", error=True)
    target = runtime.releases.release(runtime.contract.app(app), candidate)
    return render(
        request,
        "release_confirm.html",
        session=session,
        title=f"Promote {candidate}",
        kind="promote",
        a=found,
        target=target,
        suite=runtime.contract.rollout.gate_suite or "evals/core.yaml",
        label=label,
    )


@router.post("/{app}/promote/confirm")
async def promote(app: str, request: Request) -> Response:
    """Run the eval gate on the candidate and promote it; on a refusal, the regressions and a force form."""
    from keel.releases.gate import promote_release  # the gate imports the eval runner, which imports the server

    session, fields, refused = await _admin_form(request)
    if refused:
        return refused
    runtime = runtime_of(request)
    candidate = fields.get("candidate", "")
    force = fields.get("force") == "1"
    reason = fields.get("reason", "").strip()
    if force and not reason:
        return redirect(PAGE, flash="Forcing a promotion needs a reason.", error=True)
    try:
        state, result = await promote_release(
            runtime, app=app, candidate=candidate, actor=session.principal.id, force_reason=reason if force else None
        )
    except GateFailed as exc:
        found = await asyncio.to_thread(_find, runtime, app)
        return render(
            request,
            "release_confirm.html",
            session=session,
            title=f"Promote {candidate}",
            status_code=409,
            kind="refused",
            a=found,
            candidate=candidate,
            message=exc.message,
            regressions=await asyncio.to_thread(_refusal, runtime, app),
            label=label,
        )
    except ServiceError as exc:
        return redirect(PAGE, flash=exc.message, error=True)
    if force:
        overrode = len(result.regressions)
        flash = f"Promoted {candidate} on {app}, forced past {overrode} regression(s); the reason is audited."
    else:
        flash = f"Promoted {candidate} on {app}: the eval gate passed. Rollback restores {label(state.history[-1])}."
    return redirect(PAGE, flash=flash)


def _refusal(runtime: Runtime, app: str) -> list[str]:
    """The regressions of the app's latest refused promotion (as its audit record keeps them)."""
    for record in runtime.audit.records(tenant="*", action="release.promote_refused", last=True, limit=20):
        if record.subject == app:
            return [str(r) for r in record.data.get("regressions", [])]
    return []


@router.post("/{app}/rollback")
async def rollback_confirm(app: str, request: Request) -> Response:
    """First step of a rollback: a page naming the release it restores."""
    session, _, refused = await _admin_form(request)
    if refused:
        return refused
    found = await asyncio.to_thread(_find, runtime_of(request), app)
    if found is None or found.previous is None:
        return redirect(PAGE, flash=f"The app {app!r} has no earlier release to roll back to.", error=True)
    return render(
        request,
        "release_confirm.html",
        session=session,
        title=f"Roll back {app}",
        kind="rollback",
        a=found,
        label=label,
    )


@router.post("/{app}/rollback/confirm")
async def rollback(app: str, request: Request) -> Response:
    """Restore the release that served the app before."""
    session, fields, refused = await _admin_form(request)
    if refused:
        return refused
    runtime = runtime_of(request)
    try:
        after = await asyncio.to_thread(
            runtime.releases.rollback, app, actor=session.principal.id, reason=fields.get("reason", "").strip()
        )
    except ServiceError as exc:
        return redirect(PAGE, flash=exc.message, error=True)
    return redirect(PAGE, flash=f"Rolled back {app}: {label(after.current)} serves it again.")


@router.post("/{app}/abort")
async def abort(app: str, request: Request) -> Response:
    """End the app's shadow or canary without promoting it."""
    session, fields, refused = await _admin_form(request)
    if refused:
        return refused
    runtime = runtime_of(request)
    reason = fields.get("reason", "").strip() or "aborted by an operator"
    before = await asyncio.to_thread(_find, runtime, app)
    try:
        await asyncio.to_thread(runtime.releases.stop, app, actor=session.principal.id, reason=reason)
    except ServiceError as exc:
        return redirect(PAGE, flash=exc.message, error=True)
    ended = f"the {before.state.stage} of {before.state.candidate}" if before else "the candidate"
    serving = label(before.state.current) if before else "the current release"
    return redirect(PAGE, flash=f"Ended {ended} on {app}; {serving} serves all its traffic.")
