"""Retries of retryable upstream failures, with exponential back-off and full jitter.

Only failures before the first streamed piece are retried: once text has reached
the caller, a retry could repeat or contradict it, so the failure is passed on.
A 429's Retry-After is honoured up to the policy's longest wait.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from keel.contract import RetryPolicy
from keel.errors import UpstreamError, UpstreamRateLimited
from keel.models.base import GenerationRequest, Provider, ProviderWrapper, StreamDelta

__all__ = ["RetryingProvider", "backoff_delay"]


def backoff_delay(policy: RetryPolicy, attempt: int, error: UpstreamError, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    if isinstance(error, UpstreamRateLimited) and error.retry_after is not None:
        return min(error.retry_after, policy.max_backoff_s)
    ceiling = min(policy.max_backoff_s, policy.backoff_s * (2 ** (attempt - 1)))
    return rng.uniform(0, ceiling)


class RetryingProvider(ProviderWrapper):
    """Wraps a provider with retries."""

    def __init__(self, inner: Provider, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        super().__init__(inner)
        self._policy = policy
        self._rng = rng or random.Random()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Stream, retrying retryable failures that happen before the first piece."""
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async for delta in self._inner.stream(request):
                    started = True
                    yield delta
                return
            except UpstreamError as exc:
                if started or not exc.retryable or attempt >= self._policy.max_attempts:
                    raise
                await asyncio.sleep(backoff_delay(self._policy, attempt, exc, self._rng))
