"""identity: who is asking, from the API key."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from keel.errors import AuthError
from keel.identity import KeyStore
from keel.pipeline.context import RequestContext

__all__ = ["IdentityStage"]


class IdentityStage:
    """Resolves the bearer credential to a principal; no valid key, no request."""

    name: ClassVar[str] = "identity"
    always_runs: ClassVar[bool] = False

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def run(self, ctx: RequestContext) -> None:
        """Authenticate ``ctx.credential``."""
        if not ctx.credential:
            raise AuthError("Missing API key: send the header 'Authorization: Bearer <key>'.")
        principal = await asyncio.to_thread(self._keys.authenticate, ctx.credential)
        ctx.principal = principal
        ctx.current_span.decide(
            "authenticated",
            principal=principal.id,
            tenant=principal.tenant,
            groups=sorted(principal.groups),
            roles=sorted(principal.roles),
        )
