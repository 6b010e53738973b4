"""The fast lane: a valid request to a hot endpoint goes straight to its route function.

FastAPI's routing, dependency solving and request validation cost a gateway more CPU
per request than all of its own middleware. For the request endpoints
(``POST /v1/chat/completions``, ``POST /v1/ask``) this pure-ASGI layer reads the body,
validates it with the route's own pydantic model and calls the route's own function
with the same :class:`~starlette.requests.Request`; errors it raises get the same
envelope as anywhere else (:mod:`keel.server.errors`).

Anything it does not serve passes through to the app unchanged: other paths and
methods, bodies that are not declared as JSON, and bodies that do not validate, whose
bytes are replayed so that the framework reports the problem exactly as it always
has. So the lane changes how fast a valid request is served, never what any request
gets back. It sits inside the request-id, body-limit and admission middleware, which
apply to it as to every request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.errors import ServiceError
from keel.server.errors import service_error_response, unexpected_error_response

__all__ = ["FastLane", "LaneRoute"]


@dataclass(frozen=True)
class LaneRoute:
    """A route the lane serves: the body's model and the route function (``body, request -> response``)."""

    model: type[BaseModel]
    handler: Callable[[Any, Request], Awaitable[Response]]


class FastLane:
    """Serves valid JSON ``POST`` requests to ``routes`` directly; passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, *, routes: Mapping[str, LaneRoute]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None or not _declares_json(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away before sending its body: nobody to answer
            return
        try:
            parsed = route.model.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)  # the framework explains what is wrong
            return
        request = Request(scope, receive)
        try:
            response = await route.handler(parsed, request)
        except ServiceError as exc:
            response = service_error_response(request, exc)
        except Exception as exc:  # never a traceback to the client
            response = unexpected_error_response(request, exc)
        await response(scope, receive, send)


def _declares_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return bool(media == b"application/json" or media.endswith(b"+json"))
    return False


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
