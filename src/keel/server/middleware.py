"""Pure-ASGI middleware: request ids, the body size limit and admission (back-pressure).

Written against ASGI directly (not ``BaseHTTPMiddleware``) so that streaming
responses pass through untouched and each request costs a few function calls.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.errors import PayloadTooLarge, ServiceError
from keel.runtime import new_request_id
from keel.server.admission import Admission

__all__ = ["ADMITTED_PATHS", "AdmissionMiddleware", "BodyLimitMiddleware", "RequestIdMiddleware"]

ADMITTED_PATHS = frozenset({"/v1/ask", "/v1/chat/completions"})
"""The request endpoints that go through admission; health, readiness and metrics never wait or are shed."""

_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def _envelope(
    status: int, code: str, message: str, request_id: str, extra: dict[str, str] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message, "request_id": request_id}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (extra or {}).items()),
    ]
    return status, headers, body


async def _send_envelope(
    send: Send, status: int, code: str, message: str, request_id: str, extra: dict[str, str] | None = None
) -> None:
    status, headers, body = _envelope(status, code, message, request_id, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Honours a valid ``X-Request-ID``, generates one otherwise, and echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        if given is not None and not _VALID_ID.match(given):
            rid = new_request_id()
            await _send_envelope(
                send,
                400,
                "invalid_request_id",
                "X-Request-ID must be 1-128 characters of letters, digits, '.', '_', ':' or '-'.",
                rid,
            )
            return
        rid = given or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Rejects bodies over ``max_bytes`` with 413, by Content-Length or while reading."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(scope.get("state", {}).get("request_id", ""))
        message = f"The request body is larger than {self.max_bytes} bytes."
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _send_envelope(send, 413, "payload_too_large", message, rid)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(message)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge:
            if not started:
                await _send_envelope(send, 413, "payload_too_large", message, rid)


class AdmissionMiddleware:
    """Bounds the request endpoints' in-flight work: queues, sheds (503 with Retry-After) or refuses while draining."""

    def __init__(self, app: ASGIApp, *, admission: Admission, paths: frozenset[str] = ADMITTED_PATHS) -> None:
        self.app = app
        self.admission = admission
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            admitted_at = await self.admission.enter()
        except ServiceError as exc:
            rid = str(scope.get("state", {}).get("request_id", ""))
            await _send_envelope(send, exc.http_status, exc.code, exc.message, rid, exc.headers)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave(admitted_at)
