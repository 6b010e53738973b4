"""The OpenAI-compatible provider against scripted upstreams, direct and through an environment proxy."""

from __future__ import annotations

import asyncio
import json

import pytest

from keel.contract.models import ModelSpec, Timeouts
from keel.errors import UpstreamBadResponse, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable
from keel.models.base import ChatMessage, GenerationRequest
from keel.models.openai_compatible import OpenAICompatibleProvider, uses_proxy
from tests.unit.models.test_http1 import Server, chunk, chunked_head

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

REQUEST = GenerationRequest(messages=[ChatMessage(role="user", content="How many days of leave?")], max_tokens=32)


def sse(*events: dict[str, object]) -> bytes:
    body = b"".join(chunk(b"data: " + json.dumps(e).encode() + b"\n\n") for e in events)
    return chunked_head() + body + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def delta(text: str, finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


ANSWER = sse(
    delta("27 "),
    delta("days", "stop"),
    {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}},
)


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def answering(response: bytes):  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            writer.write(response)
            await writer.drain()

    return handler


def spec(url: str, **timeouts: float) -> ModelSpec:
    return ModelSpec(
        name="upstream",
        provider="openai_compatible",
        base_url=url,
        upstream_model="fake-1",
        max_concurrency=4,
        timeouts=Timeouts(**timeouts),
    )


@pytest.fixture(params=["direct", "proxy"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test direct and through an HTTP proxy (the scripted server plays the proxy)."""
    clear_proxies(monkeypatch)
    return str(request.param)


async def provider_for(
    server: Server, transport: str, monkeypatch: pytest.MonkeyPatch, **timeouts: float
) -> OpenAICompatibleProvider:
    if transport == "proxy":
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        provider = OpenAICompatibleProvider(spec("http://models.example.internal/v1", **timeouts), api_key="sk-test")
    else:
        provider = OpenAICompatibleProvider(spec(server.url, **timeouts), api_key="sk-test")
    await provider.warm_up()
    assert provider.via_proxy is (transport == "proxy")
    return provider


def test_a_streamed_answer_is_collected_with_the_upstreams_usage(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with Server(answering(ANSWER)) as server:
            provider = await provider_for(server, transport, monkeypatch)
            completion = await provider.complete(REQUEST)
            assert (completion.text, completion.finish_reason) == ("27 days", "stop")
            assert (completion.prompt_tokens, completion.completion_tokens) == (11, 2)
            again = await provider.complete(REQUEST)
            assert again.text == "27 days" and server.connections == 1
            head, body = server.requests[0].split(b"\r\n\r\n", 1)
            sent = json.loads(body)
            assert sent["model"] == "fake-1" and sent["stream"] is True
            assert sent["messages"] == [{"role": "user", "content": "How many days of leave?"}]
            assert b"authorization: bearer sk-test" in head.lower()
            if transport == "proxy":  # absolute-form request line: it went to the proxy
                assert head.startswith(b"POST http://models.example.internal/v1/chat/completions HTTP/1.1")
            else:
                assert head.startswith(b"POST /v1/chat/completions HTTP/1.1")
            await provider.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 0\r\n\r\n", UpstreamRateLimited),
        (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy", UpstreamUnavailable),
        (b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}", UpstreamBadResponse),
        (sse(delta("no end")), UpstreamBadResponse),
        (chunked_head() + chunk(b"data: {not json\n\n") + b"0\r\n\r\n", UpstreamBadResponse),
    ],
    ids=["429", "503", "400", "no-finish", "malformed-chunk"],
)
def test_upstream_failures_become_keel_upstream_errors(
    transport: str, monkeypatch: pytest.MonkeyPatch, response: bytes, error: type[Exception]
) -> None:
    async def scenario() -> None:
        async with Server(answering(response)) as server:
            provider = await provider_for(server, transport, monkeypatch)
            with pytest.raises(error) as caught:
                await provider.complete(REQUEST)
            if isinstance(caught.value, UpstreamRateLimited):
                assert caught.value.retry_after == 7
            await provider.close()

    asyncio.run(scenario())


def test_an_upstream_that_never_starts_answering_times_out_at_the_first_token_limit(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        await reader.read()

    async def scenario() -> None:
        async with Server(silent) as server:
            provider = await provider_for(server, transport, monkeypatch, first_token_s=0.2)
            with pytest.raises(UpstreamTimeout, match=r"did not start answering within 0\.2s"):
                await provider.complete(REQUEST)
            await provider.close()

    asyncio.run(scenario())


def test_a_stream_that_stalls_times_out_at_the_stall_limit(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def stalling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(chunked_head() + chunk(b"data: " + json.dumps(delta("27 ")).encode() + b"\n\n"))
        await writer.drain()
        await reader.read()

    async def scenario() -> None:
        async with Server(stalling) as server:
            provider = await provider_for(server, transport, monkeypatch, stall_s=0.2)
            pieces: list[str] = []
            with pytest.raises(UpstreamTimeout, match=r"continue its answer within 0\.2s"):
                async for piece in provider.stream(REQUEST):
                    pieces.append(piece.text)
            assert pieces == ["27 "]
            await provider.close()

    asyncio.run(scenario())


def test_a_refused_connection_is_unavailable_and_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with Server(answering(ANSWER)) as server:
            url = server.url
        provider = OpenAICompatibleProvider(spec(url))
        with pytest.raises(UpstreamUnavailable, match="unreachable") as caught:
            await provider.complete(REQUEST)
        assert caught.value.retryable
        await provider.close()

    clear_proxies(monkeypatch)
    asyncio.run(scenario())


def test_the_environment_proxy_applies_unless_no_proxy_exempts_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)
    assert not uses_proxy("https://api.openai.com/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert uses_proxy("https://api.openai.com/v1")
    assert not uses_proxy("http://vllm.internal:8000/v1")  # only https is proxied
    monkeypatch.setenv("NO_PROXY", "api.openai.com,.internal")
    assert not uses_proxy("https://api.openai.com/v1")
    assert uses_proxy("https://api.anthropic.example/v1")
