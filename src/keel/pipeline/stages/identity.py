"""identity: who is asking, from an API key or a JWT, and whether they may call this app."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from keel.errors import AuthError, ForbiddenError
from keel.identity import Authenticator
from keel.pipeline.context import RequestContext

__all__ = ["IdentityStage"]


class IdentityStage:
    """Resolves the bearer credential to a principal; no valid credential, no request."""

    name: ClassVar[str] = "identity"
    always_runs: ClassVar[bool] = False

    def __init__(self, auth: Authenticator) -> None:
        self._auth = auth

    async def run(self, ctx: RequestContext) -> None:
        """Authenticate ``ctx.credential`` and check the endpoint's scope and the app.

        A context built in process with a principal and no credential (the evaluation
        runner) is taken as authenticated; the HTTP routes never build one.
        """
        if ctx.principal is not None and ctx.credential is None:
            verdict = "in_process"
        elif not ctx.credential:
            raise AuthError("Missing credential: send the header 'Authorization: Bearer <key or token>'.")
        else:
            ctx.principal = self._auth.cached(ctx.credential) or await asyncio.to_thread(
                self._auth.authenticate, ctx.credential
            )
            verdict = "authenticated"
        p = ctx.principal
        assert p is not None
        ctx.current_span.decide(
            verdict,
            principal=p.id,
            tenant=p.tenant,
            groups=sorted(p.groups),
            roles=sorted(p.roles),
            credential=p.credential,
        )
        if not p.can(ctx.endpoint):
            raise ForbiddenError(f"This credential may not use the {ctx.endpoint} endpoint.")
        if not p.may_use_app(ctx.app.name):
            raise ForbiddenError(f"This credential may not use the app {ctx.app.name!r}.")
