"""The circuit breaker opens after repeated failures, probes once after the cool-down, and recovers."""

from __future__ import annotations

import asyncio

import pytest

from keel.contract import BreakerSettings
from keel.errors import CircuitOpen, UpstreamUnavailable
from keel.models.breaker import CircuitBreaker, CircuitBreakingProvider
from tests.unit.models.fakes import ScriptedProvider, request


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SETTINGS = BreakerSettings(failures=3, window_s=10, cooldown_s=5)


def test_opens_after_the_threshold_within_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.acquire()


def test_old_failures_fall_out_of_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 11
    breaker.record_failure()
    assert breaker.state == "closed"


def test_half_open_lets_exactly_one_probe_through_and_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5
    assert breaker.state == "half_open"
    assert breaker.acquire() is True
    assert breaker.acquire() is False
    breaker.record_success()
    assert breaker.state == "closed"


def test_failed_probe_reopens_for_another_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(SETTINGS, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5
    assert breaker.acquire()
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.seconds_until_probe() == pytest.approx(5)


def test_wrapper_fails_fast_while_open_without_calling_the_provider() -> None:
    inner = ScriptedProvider([UpstreamUnavailable("down")] * 3)
    wrapped = CircuitBreakingProvider(inner, CircuitBreaker(SETTINGS))

    async def run() -> None:
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await wrapped.complete(request())
        with pytest.raises(CircuitOpen):
            await wrapped.complete(request())

    asyncio.run(run())
    assert inner.calls == 3
