"""Bounded concurrency per model: at most N calls in flight, a bounded queue, a queue-time limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from keel.errors import ModelBusy
from keel.models.base import GenerationRequest, Provider, ProviderWrapper, StreamDelta

__all__ = ["ConcurrencyLimiter", "LimitedProvider"]


class ConcurrencyLimiter:
    """A semaphore with a bounded, time-limited queue."""

    def __init__(self, *, max_concurrency: int, max_queue: int, queue_timeout_s: float) -> None:
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._max_queue = max_queue
        self._queue_timeout_s = queue_timeout_s
        self.in_flight = 0
        self.waiting = 0

    async def acquire(self, name: str) -> None:
        """Wait for a slot; raise :class:`ModelBusy` when the queue is full or the wait too long."""
        if self.in_flight + self.waiting >= self._max_concurrency + self._max_queue:
            raise ModelBusy(f"The model {name} is at capacity ({self.waiting} requests waiting).")
        self.waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self._queue_timeout_s)
        except TimeoutError:
            raise ModelBusy(f"The model {name} was busy for {self._queue_timeout_s:g}s.") from None
        finally:
            self.waiting -= 1
        self.in_flight += 1

    def release(self) -> None:
        """Free a slot."""
        self.in_flight -= 1
        self._semaphore.release()


class LimitedProvider(ProviderWrapper):
    """Wraps a provider with a :class:`ConcurrencyLimiter`."""

    def __init__(self, inner: Provider, limiter: ConcurrencyLimiter) -> None:
        super().__init__(inner)
        self.limiter = limiter

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Stream within the limit; the slot is held until the stream ends."""
        await self.limiter.acquire(self.name)
        try:
            async for delta in self._inner.stream(request):
                yield delta
        finally:
            self.limiter.release()
