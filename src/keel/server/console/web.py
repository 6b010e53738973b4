"""What every console page shares: templates, the signed-in session, forms and redirects.

Pages are rendered on the server with Jinja2 (autoescaped). A page handler calls
:func:`page_session` for the signed-in session (or gets a redirect to the sign-in
page), reads data through the library, and returns :func:`render`. Forms that change
something are POSTs carrying the session's CSRF token (:func:`form_session`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from keel.errors import AuthError
from keel.runtime import Runtime
from keel.server.console.sessions import COOKIE, ConsoleSession, ConsoleSessions
from keel.server.deps import runtime_of

__all__ = ["NAV", "SignInRequired", "form_session", "page_session", "redirect", "render", "sessions_of"]

HERE = Path(__file__).parent

NAV: list[tuple[str, str, str | None]] = [
    ("/console", "Overview", "reviewer"),
    ("/console/requests", "Requests", None),
    ("/console/evals", "Evaluations", "reviewer"),
    ("/console/releases", "Releases", "reviewer"),
    ("/console/sources", "Sources", "reviewer"),
    ("/console/handoffs", "Hand-offs", "reviewer"),
]
"""Navigation: path, label, and the role needed to see it (admins see everything)."""

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True
)


class SignInRequired(Exception):
    """No valid console session: the page answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str, message: str) -> None:
        super().__init__(message)
        self.next_path = next_path
        self.message = message


def sessions_of(request: Request) -> ConsoleSessions:
    """The console's session store, over the running service's database."""
    runtime: Runtime = runtime_of(request)
    store: ConsoleSessions | None = getattr(request.app.state, "console_sessions", None)
    if store is None or store.db is not runtime.db:
        store = ConsoleSessions(runtime.db, runtime.keys)
        request.app.state.console_sessions = store
    return store


def roles_of(session: ConsoleSession) -> list[str]:
    """The roles the console honours: an admin also counts as a reviewer."""
    roles = set(session.principal.roles)
    if "admin" in roles:
        roles.add("reviewer")
    return sorted(roles)


def page_session(request: Request, *, role: str | None = None) -> ConsoleSession:
    """The signed-in session; :class:`SignInRequired` when there is none (or it lacks ``role``)."""
    try:
        session = sessions_of(request).get(request.cookies.get(COOKIE))
    except AuthError as exc:
        raise SignInRequired(request.url.path, exc.message) from None
    if role is not None and role not in roles_of(session):
        raise SignInRequired(request.url.path, f"This page needs the {role} role; sign in with such a key.")
    return session


async def form_session(request: Request, *, role: str | None = None) -> tuple[ConsoleSession, Mapping[str, str]]:
    """The session of a form post and its fields, after checking the CSRF token."""
    session = page_session(request, role=role)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    sessions_of(request).check_csrf(session, fields.get("csrf"))
    return session, fields


def render(
    request: Request,
    template: str,
    *,
    session: ConsoleSession | None,
    title: str,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A console page."""
    html = _env.get_template(template).render(
        session=session,
        roles=roles_of(session) if session else [],
        nav=NAV,
        active=request.url.path,
        title=title,
        flash=request.query_params.get("flash"),
        flash_error=request.query_params.get("error") == "1",
        **values,
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
            " frame-ancestors 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


def redirect(path: str, *, flash: str | None = None, error: bool = False) -> Response:
    """A 303 to ``path`` (after a form), optionally with a message for the next page."""
    if flash:
        path += ("&" if "?" in path else "?") + "flash=" + quote(flash) + ("&error=1" if error else "")
    return RedirectResponse(path, status_code=303)
