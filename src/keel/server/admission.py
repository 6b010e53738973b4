"""Admission control for one replica: bounded in-flight work, a bounded queue, load shedding, draining.

At most ``max_in_flight`` requests run at once; the next ``max_queue`` wait, first come
first served. A request is shed at once (:class:`~keel.errors.Overloaded`) when the
queue is full or when its expected wait -- its place in the queue times the recent
service time, spread over the slots -- is longer than ``max_queue_s``; one that waits
longer than ``max_queue_s`` anyway is shed then. ``Retry-After`` is that expected wait.
While draining (after SIGTERM) new requests get :class:`~keel.errors.ShuttingDown`;
those already admitted or queued finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NoReturn

from keel.errors import Overloaded, ServiceError, ShuttingDown

__all__ = ["SERVICE_SMOOTHING", "Admission", "AdmissionDecision", "ShedReason"]

ShedReason = Literal["overloaded", "shutting_down"]
SERVICE_SMOOTHING = 0.2
"""Weight of the newest request in the moving average of the service time."""
DRAIN_RETRY_AFTER_S = 1.0
"""Retry-After while draining: the load balancer has another replica by then."""


@dataclass(frozen=True, kw_only=True)
class AdmissionDecision:
    """What to do with an arriving request: run it, queue it, or shed it (with the reason and Retry-After)."""

    action: Literal["admit", "queue", "shed"]
    reason: ShedReason | None = None
    retry_after_s: float = 0.0
    message: str = ""

    def error(self) -> ServiceError:
        """The error a shed request is answered with."""
        if self.reason == "shutting_down":
            return ShuttingDown(self.message, retry_after=self.retry_after_s)
        return Overloaded(self.message, retry_after=self.retry_after_s)


class Admission:
    """Counts the requests in flight and queued, decides admission and hands slots over in order."""

    def __init__(
        self,
        *,
        max_in_flight: int = 64,
        max_queue: int = 64,
        max_queue_s: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.max_queue_s = max_queue_s
        self._clock = clock
        self._on_shed: Callable[[str], None] | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.service_s: float | None = None
        """Moving average of recent service times (admission to response end); ``None`` before the first."""
        self.in_flight = 0
        self.draining = False

    def configure(
        self, *, max_in_flight: int, max_queue: int, max_queue_s: float, on_shed: Callable[[str], None] | None = None
    ) -> None:
        """Apply the contract's limits (at start-up) and the callback counting shed requests by reason."""
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.max_queue_s = max_queue_s
        self._on_shed = on_shed

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing queued."""
        return self.in_flight == 0 and not self._waiters

    def start_draining(self) -> None:
        """Refuse new requests from now on; those admitted or queued still run."""
        self.draining = True

    def expected_wait_s(self, position: int) -> float | None:
        """Expected wait of the request at ``position`` (1: next) in the queue, or ``None`` before any sample."""
        if self.service_s is None:
            return None
        return self.service_s * position / self.max_in_flight

    def _retry_after_s(self, position: int) -> float:
        expected = self.expected_wait_s(position)
        return self.max_queue_s if expected is None else expected

    def decide(self) -> AdmissionDecision:
        """Admission for a request arriving now."""
        if self.draining:
            return AdmissionDecision(
                action="shed",
                reason="shutting_down",
                retry_after_s=DRAIN_RETRY_AFTER_S,
                message="This replica is shutting down; retry and another one will serve the request.",
            )
        if self.in_flight < self.max_in_flight and not self._waiters:
            return AdmissionDecision(action="admit")
        position = len(self._waiters) + 1
        expected = self.expected_wait_s(position)
        if position > self.max_queue:
            return AdmissionDecision(
                action="shed",
                reason="overloaded",
                retry_after_s=self._retry_after_s(position),
                message=f"The service is at capacity ({self.in_flight} in flight, {len(self._waiters)} waiting).",
            )
        if expected is not None and expected > self.max_queue_s:
            return AdmissionDecision(
                action="shed",
                reason="overloaded",
                retry_after_s=expected,
                message=f"The service is at capacity: the expected wait of {expected:.1f} s is over the"
                f" {self.max_queue_s:g} s limit.",
            )
        return AdmissionDecision(action="queue")

    async def enter(self) -> float:
        """Take a slot, waiting in the queue if need be; returns the admission time.

        Raises the shed error (:class:`Overloaded`, :class:`ShuttingDown`) instead.
        """
        decision = self.decide()
        if decision.action == "shed":
            self._shed(decision)
        if decision.action == "admit":
            self.in_flight += 1
            return self._clock()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=self.max_queue_s)
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        if not waiter.done():
            self._abandon(waiter)
            self._shed(
                AdmissionDecision(
                    action="shed",
                    reason="overloaded",
                    retry_after_s=self._retry_after_s(len(self._waiters) + 1),
                    message=f"The service is at capacity: no slot freed within {self.max_queue_s:g} s.",
                )
            )
        return self._clock()

    def leave(self, admitted_at: float) -> None:
        """Free the slot taken at ``admitted_at`` (handing it to the next in the queue) and learn the service time."""
        took = max(0.0, self._clock() - admitted_at)
        last = self.service_s
        self.service_s = took if last is None else last + SERVICE_SMOOTHING * (took - last)
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it: in_flight stays the same
                return
        self.in_flight -= 1

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled():
            self._release()  # the slot was handed over as the wait ended: pass it on
            return
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _shed(self, decision: AdmissionDecision) -> NoReturn:
        assert decision.reason is not None
        if self._on_shed is not None:
            self._on_shed(decision.reason)
        raise decision.error()
