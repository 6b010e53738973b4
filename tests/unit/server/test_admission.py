"""Admission: N requests in flight, a bounded queue, shedding by expected wait, honest Retry-After, draining."""

from __future__ import annotations

import asyncio

import pytest

from keel.errors import Overloaded, ShuttingDown
from keel.server.admission import Admission


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _admission(clock: FakeClock, shed: list[str] | None = None, **limits: float) -> Admission:
    admission = Admission(clock=clock)
    admission.configure(
        max_in_flight=int(limits.get("max_in_flight", 2)),
        max_queue=int(limits.get("max_queue", 4)),
        max_queue_s=limits.get("max_queue_s", 5.0),
        on_shed=None if shed is None else shed.append,
    )
    return admission


def _learn_service_time(admission: Admission, clock: FakeClock, seconds: float) -> None:
    async def one() -> None:
        started = await admission.enter()
        clock.now += seconds
        admission.leave(started)

    asyncio.run(one())


def test_requests_under_the_limit_are_admitted_at_once() -> None:
    admission = _admission(FakeClock())
    assert admission.decide().action == "admit"

    async def run() -> None:
        await admission.enter()
        await admission.enter()

    asyncio.run(run())
    assert admission.in_flight == 2
    assert admission.decide().action == "queue"


def test_a_full_queue_sheds_with_overloaded_and_counts_it() -> None:
    clock, shed = FakeClock(), []
    admission = _admission(clock, shed, max_in_flight=1, max_queue=0)

    async def run() -> Overloaded:
        await admission.enter()
        with pytest.raises(Overloaded) as caught:
            await admission.enter()
        return caught.value

    error = asyncio.run(run())
    assert error.code == "overloaded" and error.http_status == 503
    assert "Retry-After" in error.headers
    assert shed == ["overloaded"]


def test_an_expected_wait_over_the_limit_is_shed_with_that_wait_as_retry_after() -> None:
    clock, shed = FakeClock(), []
    admission = _admission(clock, shed, max_in_flight=2, max_queue=100, max_queue_s=5.0)
    _learn_service_time(admission, clock, 4.0)  # a request takes 4 s: over two slots, 2 s per place in the queue

    async def run() -> None:
        for _ in range(2):
            await admission.enter()
        assert [admission.expected_wait_s(p) for p in (1, 2, 3)] == [2.0, 4.0, 6.0]
        waiting = [asyncio.create_task(admission.enter()) for _ in range(2)]  # expected waits 2 s and 4 s: queued
        await asyncio.sleep(0)
        assert admission.queued == 2
        decision = admission.decide()  # third in the queue: 6 s expected, over the 5 s limit
        assert decision.action == "shed" and decision.reason == "overloaded"
        assert decision.retry_after_s == pytest.approx(6.0)
        assert decision.error().headers == {"Retry-After": "6"}
        with pytest.raises(Overloaded, match=r"expected wait of 6\.0 s"):
            await admission.enter()
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    asyncio.run(run())
    assert shed == ["overloaded"]


def test_retry_after_follows_the_recent_service_time() -> None:
    clock = FakeClock()
    admission = _admission(clock, max_in_flight=1, max_queue=0)
    _learn_service_time(admission, clock, 10.0)
    for _ in range(20):
        _learn_service_time(admission, clock, 0.5)
    assert admission.service_s is not None and admission.service_s < 0.7
    admission.in_flight = 1
    assert admission.decide().error().headers == {"Retry-After": "1"}


def test_queued_requests_run_in_order_when_slots_free() -> None:
    admission = _admission(FakeClock(), max_in_flight=1, max_queue=5, max_queue_s=5.0)
    order: list[int] = []

    async def request(n: int, hold: asyncio.Event) -> None:
        started = await admission.enter()
        order.append(n)
        await hold.wait()
        admission.leave(started)

    async def run() -> None:
        holds = [asyncio.Event() for _ in range(3)]
        tasks = [asyncio.create_task(request(n, holds[n])) for n in range(3)]
        await asyncio.sleep(0)
        assert admission.in_flight == 1 and admission.queued == 2
        for hold in holds:
            hold.set()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    assert order == [0, 1, 2]
    assert admission.idle


def test_a_request_that_waits_past_the_limit_is_shed_and_leaves_the_queue() -> None:
    shed: list[str] = []
    admission = _admission(FakeClock(), shed, max_in_flight=1, max_queue=5, max_queue_s=0.05)

    async def run() -> None:
        started = await admission.enter()
        with pytest.raises(Overloaded, match="no slot freed"):
            await admission.enter()
        assert admission.queued == 0
        admission.leave(started)

    asyncio.run(run())
    assert shed == ["overloaded"]
    assert admission.idle


def test_a_cancelled_waiter_gives_up_its_place() -> None:
    admission = _admission(FakeClock(), max_in_flight=1, max_queue=5, max_queue_s=5.0)

    async def run() -> None:
        started = await admission.enter()
        waiter = asyncio.create_task(admission.enter())
        await asyncio.sleep(0)
        assert admission.queued == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert admission.queued == 0
        admission.leave(started)

    asyncio.run(run())
    assert admission.idle


def test_draining_refuses_new_requests_with_shutting_down_but_lets_admitted_ones_finish() -> None:
    shed: list[str] = []
    admission = _admission(FakeClock(), shed)

    async def run() -> None:
        started = await admission.enter()
        admission.start_draining()
        with pytest.raises(ShuttingDown) as caught:
            await admission.enter()
        assert caught.value.http_status == 503 and caught.value.headers == {"Retry-After": "1"}
        assert not admission.idle
        admission.leave(started)

    asyncio.run(run())
    assert shed == ["shutting_down"]
    assert admission.idle
