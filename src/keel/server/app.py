"""The ASGI application factory.

``create_app(settings)`` has no side effects until the server starts: the lifespan
opens the project, builds the :class:`~keel.runtime.Runtime` and warms it up, applies
the contract's admission limits (``server``), and closes it (flushing traces) on shutdown.
``app.state.admission`` is the replica's :class:`~keel.server.admission.Admission`:
``keel serve`` drains it on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from keel import __version__
from keel.runtime import Runtime
from keel.server.admission import Admission
from keel.server.console.routes import install_console
from keel.server.errors import install_error_handlers
from keel.server.fast_lane import FastLane, LaneRoute
from keel.server.middleware import AdmissionMiddleware, BodyLimitMiddleware, RequestIdMiddleware
from keel.server.routes import admin, ask, chat, feedback, handoffs, health, metrics, models, releases, traces
from keel.server.schemas import AskRequest, ChatCompletionRequest
from keel.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """The Keel HTTP app for ``settings`` (or around an existing ``runtime``)."""
    admission = Admission()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        live = runtime or Runtime.from_settings(settings)
        await live.warm_up()
        limits = live.contract.server
        admission.configure(
            max_in_flight=limits.max_in_flight,
            max_queue=limits.max_queue,
            max_queue_s=(limits.max_queue_ms or live.contract.slo.p95_latency_ms) / 1000.0,
            on_shed=live.metrics.record_shed,
        )
        live.metrics.watch_admission(admission)
        app.state.runtime = live
        background = [
            asyncio.create_task(live.watch.run(live.contract.slo.check_interval_s)),
            asyncio.create_task(live.canary.run()),
        ]
        if live.contract.ingest.refresh_check_s > 0 and live.contract.sources:
            background.append(asyncio.create_task(live.refresher.run(live.contract.ingest.refresh_check_s)))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            app.state.runtime = None
            if owned:
                await live.close()

    app = FastAPI(
        title="Keel",
        version=__version__,
        description=(
            "Permission-aware answers over enterprise documents, run against a production contract. "
            "Authenticate with 'Authorization: Bearer <key>'. Every error is "
            '{"error": {"code", "message", "request_id"}}.'
        ),
        lifespan=lifespan,
    )
    app.state.runtime = None
    app.state.admission = admission
    install_error_handlers(app)
    for module in (health, metrics, ask, chat, models, traces, feedback, handoffs, admin, releases):
        app.include_router(module.router)
    install_console(app)
    app.add_middleware(
        FastLane,
        routes={
            "/v1/chat/completions": LaneRoute(ChatCompletionRequest, chat.chat_completions),
            "/v1/ask": LaneRoute(AskRequest, ask.ask),
        },
    )
    app.add_middleware(AdmissionMiddleware, admission=admission)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app
