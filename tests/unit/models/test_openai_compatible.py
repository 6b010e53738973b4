"""The OpenAI-compatible provider reuses its pooled connection from one call to the next."""

from __future__ import annotations

import asyncio
import json

from keel.contract import ModelSpec
from keel.models.base import ChatMessage, GenerationRequest
from keel.models.openai_compatible import OpenAICompatibleProvider


def _chunked(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


async def _serve_streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connections: list[int]) -> None:
    """A minimal keep-alive upstream: every request gets an SSE stream ending in ``[DONE]``, sent chunked."""
    connections.append(1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            delta = {"choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": "stop"}]}
            writer.write(_chunked(f"data: {json.dumps(delta)}\n\n".encode()))
            await writer.drain()
            await asyncio.sleep(0.005)  # the end of the body arrives a moment after [DONE]
            writer.write(_chunked(b"data: [DONE]\n\n"))
            await writer.drain()
            await asyncio.sleep(0.005)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_consecutive_calls_share_one_upstream_connection() -> None:
    async def scenario() -> tuple[list[str], int]:
        connections: list[int] = []
        server = await asyncio.start_server(lambda r, w: _serve_streams(r, w, connections), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        spec = ModelSpec(name="up", provider="openai_compatible", tier="large", base_url=f"http://127.0.0.1:{port}/v1")
        provider = OpenAICompatibleProvider(spec)
        request = GenerationRequest(messages=[ChatMessage(role="user", content="hi")], max_tokens=8)
        try:
            answers = [(await provider.complete(request)).text for _ in range(3)]
        finally:
            await provider.close()
            server.close()
            await server.wait_closed()
        return answers, len(connections)

    answers, connections = asyncio.run(scenario())
    assert answers == ["hello"] * 3
    assert connections == 1
