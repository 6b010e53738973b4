"""Bounded concurrency: N in flight, a bounded queue, a queue-time limit."""

from __future__ import annotations

import asyncio

import pytest

from keel.errors import ModelBusy
from keel.models.limiter import ConcurrencyLimiter, LimitedProvider
from tests.unit.models.fakes import ScriptedProvider, request


def test_no_more_than_max_concurrency_calls_run_at_once() -> None:
    limiter = ConcurrencyLimiter(max_concurrency=2, max_queue=10, queue_timeout_s=5)
    peak = 0

    class Counting(ScriptedProvider):
        async def stream(self, req):  # type: ignore[no-untyped-def, override]
            nonlocal peak
            peak = max(peak, limiter.in_flight)
            async for delta in super().stream(req):
                yield delta

    wrapped = LimitedProvider(Counting([], delay=0.05), limiter)

    async def run() -> None:
        await asyncio.gather(*(wrapped.complete(request()) for _ in range(6)))

    asyncio.run(run())
    assert peak == 2
    assert limiter.in_flight == 0 and limiter.waiting == 0


def test_full_queue_fails_at_once() -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=1, queue_timeout_s=5)
    wrapped = LimitedProvider(ScriptedProvider([], delay=0.2), limiter)

    async def run() -> list[object]:
        return await asyncio.gather(*(wrapped.complete(request()) for _ in range(3)), return_exceptions=True)

    results = asyncio.run(run())
    busy = [r for r in results if isinstance(r, ModelBusy)]
    assert len(busy) == 1 and "capacity" in busy[0].message


def test_waiting_longer_than_the_queue_limit_fails() -> None:
    limiter = ConcurrencyLimiter(max_concurrency=1, max_queue=5, queue_timeout_s=0.05)
    wrapped = LimitedProvider(ScriptedProvider([], delay=0.3), limiter)

    async def run() -> None:
        first = asyncio.create_task(wrapped.complete(request()))
        await asyncio.sleep(0.01)
        with pytest.raises(ModelBusy, match="busy"):
            await wrapped.complete(request())
        await first

    asyncio.run(run())


def test_model_busy_carries_retry_after_from_the_recent_hold_time() -> None:
    now = [0.0]
    limiter = ConcurrencyLimiter(max_concurrency=2, max_queue=0, queue_timeout_s=5, clock=lambda: now[0])
    assert limiter.retry_after_s() == 1.0  # no call seen yet

    async def run() -> ModelBusy:
        await limiter.acquire("m")
        limiter.release(held_s=3.0)
        await limiter.acquire("m")
        await limiter.acquire("m")
        with pytest.raises(ModelBusy) as caught:
            await limiter.acquire("m")
        return caught.value

    busy = asyncio.run(run())
    assert busy.retry_after == pytest.approx(1.5)  # 3 s per call, one call ahead of two slots
    assert busy.headers == {"Retry-After": "2"}
