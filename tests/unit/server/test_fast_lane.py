"""The fast lane serves valid JSON requests from the route function and hands everything else over untouched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from keel.errors import RateLimited, UnknownModel, retry_after_header
from keel.server.fast_lane import FastLane, LaneRoute


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    n: int = 1


class Inner:
    """The app behind the lane: records what reached it, body bytes included."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append((scope["path"], body))
        await JSONResponse({"served_by": "app"}, status_code=422)(scope, receive, send)


async def handler(body: Body, request: Request) -> Response:
    if body.model == "unknown":
        raise UnknownModel("Unknown model 'unknown'; available: fake (GET /v1/models).")
    if body.model == "busy":
        raise RateLimited("Too many requests.", headers=retry_after_header(3))
    if body.model == "bug":
        raise RuntimeError("secret internals /etc/keel.yaml")
    return JSONResponse({"served_by": "lane", "model": body.model, "n": body.n, "rid": request.state.request_id})


def call(
    lane: FastLane, *, path: str = "/v1/chat/completions", method: str = "POST", body: bytes, content_type: str | None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = [(b"content-type", content_type.encode())] if content_type else []
    chunks = [body[: len(body) // 2], body[len(body) // 2 :]]  # delivered in two messages
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            part = chunks.pop(0)
            return {"type": "http.request", "body": part, "more_body": bool(chunks)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers,
        "query_string": b"",
        "state": {"request_id": "req_test"},
    }
    asyncio.run(lane(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, json.loads(payload)


def lane() -> tuple[FastLane, Inner]:
    inner = Inner()
    return FastLane(inner, routes={"/v1/chat/completions": LaneRoute(Body, handler)}), inner


def test_a_valid_json_request_is_served_by_the_route_function_with_its_request_state() -> None:
    fast, inner = lane()
    status, _, body = call(fast, body=b'{"model": "fake", "n": 2, "extra": true}', content_type="application/json")
    assert (status, body) == (200, {"served_by": "lane", "model": "fake", "n": 2, "rid": "req_test"})
    assert inner.calls == []


def test_an_invalid_body_reaches_the_app_byte_for_byte() -> None:
    for raw in (b'{"model": 5}', b'{"model": "x", "n": "many"}', b"{not json", b""):
        fast, inner = lane()
        status, _, body = call(fast, body=raw, content_type="application/json")
        assert (status, body) == (422, {"served_by": "app"})
        assert inner.calls == [("/v1/chat/completions", raw)]


def test_other_content_types_methods_and_paths_pass_through() -> None:
    valid = b'{"model": "fake"}'
    for kwargs in (
        {"content_type": "text/plain"},
        {"content_type": None},
        {"content_type": "application/json", "method": "PUT"},
        {"content_type": "application/json", "path": "/v1/other"},
    ):
        fast, inner = lane()
        status, _, _ = call(fast, body=valid, **kwargs)  # type: ignore[arg-type]
        assert status == 422 and len(inner.calls) == 1 and inner.calls[0][1] == valid
    fast, inner = lane()
    status, _, _ = call(fast, body=valid, content_type="application/vnd.api+json; charset=utf-8")
    assert status == 200 and inner.calls == []


def test_errors_raised_in_the_lane_get_the_envelope_and_never_internals() -> None:
    fast, _ = lane()
    status, _, body = call(fast, body=b'{"model": "unknown"}', content_type="application/json")
    assert status == 400 and body["error"]["code"] == "unknown_model" and body["error"]["request_id"] == "req_test"
    status, headers, body = call(fast, body=b'{"model": "busy"}', content_type="application/json")
    assert status == 429 and body["error"]["code"] == "rate_limited" and headers["retry-after"] == "3"
    status, _, body = call(fast, body=b'{"model": "bug"}', content_type="application/json")
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "etc" not in json.dumps(body) and "RuntimeError" not in json.dumps(body)
