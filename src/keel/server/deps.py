"""Small helpers shared by route handlers."""

from __future__ import annotations

from fastapi import Request

from keel.errors import AuthError, ForbiddenError, NotReady
from keel.identity import Principal
from keel.runtime import Runtime

__all__ = ["bearer", "principal_of", "require", "runtime_of"]


def runtime_of(request: Request) -> Runtime:
    """The app's runtime (set by the lifespan)."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise NotReady("The service is starting.")
    return runtime


def bearer(request: Request) -> str | None:
    """The bearer credential from ``Authorization``, if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("Use the header 'Authorization: Bearer <key>'.")
    return value.strip()


def principal_of(request: Request) -> Principal:
    """Authenticate the caller of a non-pipeline route."""
    credential = bearer(request)
    if not credential:
        raise AuthError("Missing credential: send the header 'Authorization: Bearer <key or token>'.")
    return runtime_of(request).auth.authenticate(credential)


def require(request: Request, scope: str) -> Principal:
    """Authenticate the caller and check that it holds ``scope`` (403 otherwise)."""
    principal = principal_of(request)
    if not principal.can(scope):
        raise ForbiddenError(f"This operation needs the {scope!r} permission, which this credential does not have.")
    return principal
