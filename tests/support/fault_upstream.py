"""A fault-injecting OpenAI-compatible upstream, written for the tests.

It answers ``/v1/chat/completions`` (streaming or not) with the first sentence of
the first numbered passage in the prompt, cited ``[1]`` (so Keel's grounding keeps
it), and can instead be told to fail in every way a real upstream does: HTTP 500,
429 with Retry-After, a slow first byte, a stream that stops mid-way (with or
without closing), and invalid JSON. It runs on 127.0.0.1 in a background thread
and can be stopped and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Mode = Literal[
    "ok", "error_500", "rate_limited", "slow_first_byte", "stall", "stall_after_sentence", "cut", "invalid_json"
]


@dataclass
class FaultState:
    """What the next requests do, and what happened."""

    mode: Mode = "ok"
    times: int | None = None
    """Apply ``mode`` to this many requests, then go back to ``ok`` (``None``: until changed)."""
    delay_s: float = 5.0
    retry_after: str = "1"
    requests: int = 0
    modes_served: list[str] = field(default_factory=list)
    traceparents: list[str | None] = field(default_factory=list)
    """The ``traceparent`` header of each request, in order."""

    def next_mode(self) -> Mode:
        self.requests += 1
        mode = self.mode
        if self.times is not None:
            self.times -= 1
            if self.times <= 0:
                self.mode, self.times = "ok", None
        self.modes_served.append(mode)
        return mode


_PASSAGE = re.compile(r"<passage n=\"1\"[^>]*>\n(.+)")


def _answer_for(body: dict[str, Any]) -> str:
    user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    match = _PASSAGE.search(user)
    if not match:
        return "Hello from the test upstream."
    first_line = match.group(1).strip()
    sentence = re.split(r"(?<=[.!?])\s", first_line)[0].rstrip(".")
    return f"{sentence} [1]. "


def _chunk(content: str | None, finish: str | None = None, usage: dict[str, int] | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "fault",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


class FaultUpstream:
    """The server; use as a context manager or call start() and stop()."""

    def __init__(self, port: int | None = None) -> None:
        self.state = FaultState()
        self.port = port or _free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _app(self) -> Starlette:
        state = self.state

        async def completions(request: Request) -> Response:
            body = await request.json()
            state.traceparents.append(request.headers.get("traceparent"))
            mode = state.next_mode()
            answer = _answer_for(body)
            words = answer.split(" ")
            usage = {"prompt_tokens": 100, "completion_tokens": len(words), "total_tokens": 100 + len(words)}
            if mode == "error_500":
                return JSONResponse({"error": {"message": "boom"}}, status_code=500)
            if mode == "rate_limited":
                return JSONResponse(
                    {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": state.retry_after}
                )
            if mode == "slow_first_byte":
                await asyncio.sleep(state.delay_s)

            async def events() -> AsyncIterator[str]:
                if mode == "invalid_json":
                    yield "data: {not json\n\n"
                    return
                if mode == "stall_after_sentence":
                    for word in [*words, "The", "rest"]:
                        yield _chunk(word + " ")
                    await asyncio.sleep(state.delay_s)
                    return
                for i, word in enumerate(words):
                    yield _chunk(word + ("" if i == len(words) - 1 else " "))
                    if mode in ("stall", "cut") and i == 1:
                        if mode == "stall":
                            await asyncio.sleep(state.delay_s)
                        return
                yield _chunk(None, "stop")
                yield _chunk(None, None, usage)
                yield "data: [DONE]\n\n"

            if not body.get("stream"):
                return JSONResponse(
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                        ],
                        "usage": usage,
                    }
                )
            return StreamingResponse(events(), media_type="text/event-stream")

        async def models(request: Request) -> Response:
            return JSONResponse({"object": "list", "data": [{"id": "fault", "object": "model"}]})

        return Starlette(
            routes=[Route("/v1/chat/completions", completions, methods=["POST"]), Route("/v1/models", models)]
        )

    def start(self) -> FaultUpstream:
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fault upstream did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None

    def __enter__(self) -> FaultUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
