"""The drain phase: the first SIGTERM drains, the server exits when idle or when the grace period is over."""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from keel.server.admission import Admission
from keel.server.serving import DrainingServer


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover - never called
    raise AssertionError


def _server(admission: Admission, now: list[float], grace_s: float = 10.0) -> DrainingServer:
    config = uvicorn.Config(_app, timeout_graceful_shutdown=int(grace_s))
    return DrainingServer(config, admission=admission, grace_s=grace_s, clock=lambda: now[0])


def test_sigterm_starts_draining_and_waits_for_requests_in_flight() -> None:
    admission, now = Admission(), [0.0]
    server = _server(admission, now)
    admission.in_flight = 1
    server.handle_exit(signal.SIGTERM, None)
    assert admission.draining and not server.should_exit
    assert asyncio.run(server.on_tick(1)) is False  # a request is still running
    admission.in_flight = 0
    now[0] = 4.0
    assert asyncio.run(server.on_tick(2)) is True
    assert server.config.timeout_graceful_shutdown == 6  # what is left of the grace period


def test_the_grace_period_ends_the_drain_even_with_requests_in_flight() -> None:
    admission, now = Admission(), [0.0]
    server = _server(admission, now, grace_s=3.0)
    admission.in_flight = 2
    server.handle_exit(signal.SIGTERM, None)
    now[0] = 3.5
    assert asyncio.run(server.on_tick(1)) is True
    assert server.config.timeout_graceful_shutdown == 1


def test_a_second_sigterm_stops_waiting_for_the_drain() -> None:
    admission, now = Admission(), [0.0]
    server = _server(admission, now)
    admission.in_flight = 1
    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and not server.force_exit
