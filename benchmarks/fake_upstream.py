"""A very fast fake OpenAI-compatible upstream for benchmarks: fixed answers, no model.

    .venv/bin/python benchmarks/fake_upstream.py --port 18001 [--delay-ms 0] [--chunks 8]

``POST /v1/chat/completions`` answers at once (after ``--delay-ms``), as JSON or as an
SSE stream of ``--chunks`` pieces with usage in the last chunk; ``GET /v1/models``
lists one model. Served by uvicorn with httptools and uvloop on 127.0.0.1 only, so it
costs the benchmark as little as possible. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "Employees get 27 days of paid annual leave per calendar year, plus public holidays [1]."


def build_app(delay_s: float, chunks: int) -> Starlette:
    """The fake upstream's ASGI app."""
    words = ANSWER.split(" ")
    step = max(1, len(words) // max(1, chunks))
    pieces = [" ".join(words[i : i + step]) + " " for i in range(0, len(words), step)]
    usage = {"prompt_tokens": 100, "completion_tokens": len(words), "total_tokens": 100 + len(words)}

    async def completions(request: Request) -> Response:
        body = json.loads(await request.body())
        if delay_s:
            await asyncio.sleep(delay_s)
        model = body.get("model", "fake")
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            for piece in pieces:
                chunk = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            last = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": usage,
            }
            yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "bench"}]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=8)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.delay_ms / 1000, args.chunks),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
