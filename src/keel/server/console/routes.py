"""The web console at ``/console``: sign in with an API key, then pages over the service's records.

Thin handlers: each reads through the library and renders a template. Roles: ``admin``
and ``reviewer`` see their tenant; any other key sees only its own requests.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from keel.errors import AuthError
from keel.ops.anomaly import detect_anomalies
from keel.server.console import evals_page, handoffs_page, releases_page, requests_page, sources_page
from keel.server.console.charts import bar_chart, line_chart, meter
from keel.server.console.overview import tenant_overview
from keel.server.console.sessions import COOKIE, SESSION_TTL_S
from keel.server.console.web import HERE, SignInRequired, page_session, redirect, render, sessions_of
from keel.server.deps import runtime_of

__all__ = ["PAGES", "install_console", "router"]

PAGES: list[Any] = [evals_page, sources_page, handoffs_page, releases_page, requests_page]
"""Page modules, each with a ``router`` (requests, evaluations, releases, sources, hand-offs)."""

router = APIRouter(prefix="/console", include_in_schema=False)


def install_console(app: FastAPI) -> None:
    """Serve the console: its pages, its static assets, and sign-in redirects."""

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return redirect(f"/console/login?next={quote(exc.next_path)}", flash=exc.message, error=True)

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    for module in PAGES:
        app.include_router(module.router)
    app.include_router(router)


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The sign-in form."""
    return render(request, "login.html", session=None, title="Sign in", next=request.query_params.get("next"))


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in with an API key; on success a session cookie and the page asked for."""
    form = await request.form()
    key = form.get("key")
    next_path = str(request.query_params.get("next") or "/console")
    if not next_path.startswith("/console"):
        next_path = "/console"
    try:
        token, session = await asyncio.to_thread(sessions_of(request).sign_in, key if isinstance(key, str) else "")
    except AuthError as exc:
        return render(
            request, "login.html", session=None, title="Sign in", status_code=401, error=exc.message, next=next_path
        )
    if "reviewer" not in session.principal.roles and "admin" not in session.principal.roles:
        next_path = "/console/requests" if next_path == "/console" else next_path
    response = redirect(next_path)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL_S),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    sessions_of(request).sign_out(request.cookies.get(COOKIE))
    response = redirect("/console/login", flash="Signed out.")
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("")
async def overview(request: Request) -> Response:
    """The contract at a glance for the signed-in tenant."""
    session = page_session(request, role="reviewer")
    runtime = runtime_of(request)
    await asyncio.to_thread(runtime.traces.flush)
    data = await asyncio.to_thread(
        tenant_overview, runtime.db, runtime.contract, runtime.ledger, tenant=session.principal.tenant
    )
    # Anomalies are service-wide signals (latency, cost, tokens, refusals): shown to admins only.
    anomalies = await asyncio.to_thread(detect_anomalies, runtime.db) if session.principal.is_admin else []
    return render(
        request,
        "overview.html",
        session=session,
        title="Overview",
        o=data,
        anomalies=anomalies,
        line_chart=line_chart,
        bar_chart=bar_chart,
        meter=meter,
    )
