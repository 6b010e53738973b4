"""rate_limit: the caller's key, app and tenant must have room for one more request and its tokens."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from keel.errors import RateLimited
from keel.ops.ratelimit import MemoryRateLimiter, RateLimiter, Subject
from keel.pipeline.context import RequestContext

__all__ = ["RateLimitStage", "subject_of"]

DEFAULT_ESTIMATE_TOKENS = 400
"""Tokens reserved for a request before its size is known (prompt and answer)."""


def subject_of(ctx: RequestContext) -> Subject:
    """Who the request counts against."""
    assert ctx.principal is not None
    p = ctx.principal
    key = p.credential.removeprefix("key:") if p.credential.startswith("key:") else f"{p.credential}:{p.id}"
    return Subject(key_id=key, app=ctx.app.name, tenant=p.tenant)


class RateLimitStage:
    """Takes a request and a token estimate from every bucket that applies, or refuses with 429."""

    name: ClassVar[str] = "rate_limit"
    always_runs: ClassVar[bool] = False

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def run(self, ctx: RequestContext) -> None:
        """Admit the request or raise :class:`RateLimited`."""
        subject = subject_of(ctx)
        estimate = DEFAULT_ESTIMATE_TOKENS if ctx.max_tokens is None else min(ctx.max_tokens * 2, 4000)
        if isinstance(self._limiter, MemoryRateLimiter):  # a lock and arithmetic: no thread hop
            decision = self._limiter.acquire(subject, tokens=estimate)
        else:  # a network round trip (Redis)
            decision = await asyncio.to_thread(self._limiter.acquire, subject, tokens=estimate)
        headers = decision.headers()
        ctx.current_span.decide(
            "allowed" if decision.allowed else "limited",
            limit=decision.limit_name,
            remaining=decision.remaining,
            degraded=decision.degraded,
        )
        if not decision.allowed:
            raise RateLimited(
                f"Rate limit {decision.limit_name} reached: retry in {decision.retry_after_s:.0f} s.",
                headers=headers,
            )
        ctx.response_headers.update(headers)
        ctx.token_estimate = estimate

    def settle(self, ctx: RequestContext, status: int) -> None:
        """Charge the tokens the request used beyond its estimate (or return the unused part)."""
        if ctx.principal is None or ctx.token_estimate is None:
            return
        used = ctx.usage.prompt_tokens + ctx.usage.completion_tokens
        self._limiter.charge_tokens(subject_of(ctx), used - ctx.token_estimate)
