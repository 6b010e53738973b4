"""Bounded concurrency per model: at most N calls in flight, a bounded queue, a queue-time limit.

A refused call raises :class:`ModelBusy` with ``retry_after``: the time until a slot is
likely free, from the recent time a call holds its slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from keel.errors import ModelBusy
from keel.models.base import GenerationRequest, Provider, ProviderWrapper, StreamDelta

__all__ = ["ConcurrencyLimiter", "LimitedProvider"]


HOLD_SMOOTHING = 0.2
"""Weight of the newest call in the moving average of the time a call holds its slot."""


class ConcurrencyLimiter:
    """A semaphore with a bounded, time-limited queue."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        max_queue: int,
        queue_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._max_queue = max_queue
        self._queue_timeout_s = queue_timeout_s
        self._clock = clock
        self._hold_s: float | None = None
        self.in_flight = 0
        self.waiting = 0

    def retry_after_s(self) -> float:
        """When a slot is likely free for one more call: the queue ahead of it times the recent hold time."""
        if self._hold_s is None:
            return 1.0
        return self._hold_s * (self.waiting + 1) / self._max_concurrency

    async def acquire(self, name: str) -> None:
        """Wait for a slot; raise :class:`ModelBusy` when the queue is full or the wait too long."""
        if self.in_flight + self.waiting >= self._max_concurrency + self._max_queue:
            raise ModelBusy(
                f"The model {name} is at capacity ({self.waiting} requests waiting).", retry_after=self.retry_after_s()
            )
        self.waiting += 1
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=self._queue_timeout_s)
        except TimeoutError:
            raise ModelBusy(
                f"The model {name} was busy for {self._queue_timeout_s:g}s.", retry_after=self.retry_after_s()
            ) from None
        finally:
            self.waiting -= 1
        self.in_flight += 1

    def release(self, held_s: float | None = None) -> None:
        """Free a slot; ``held_s`` (how long the call held it) feeds the retry-after estimate."""
        if held_s is not None:
            last = self._hold_s
            self._hold_s = held_s if last is None else last + HOLD_SMOOTHING * (held_s - last)
        self.in_flight -= 1
        self._semaphore.release()

    def now(self) -> float:
        """The limiter's clock."""
        return self._clock()


class LimitedProvider(ProviderWrapper):
    """Wraps a provider with a :class:`ConcurrencyLimiter`."""

    def __init__(self, inner: Provider, limiter: ConcurrencyLimiter) -> None:
        super().__init__(inner)
        self.limiter = limiter

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Stream within the limit; the slot is held until the stream ends."""
        await self.limiter.acquire(self.name)
        started = self.limiter.now()
        try:
            async for delta in self._inner.stream(request):
                yield delta
        finally:
            self.limiter.release(self.limiter.now() - started)
