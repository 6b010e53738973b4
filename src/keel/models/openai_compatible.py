"""A model behind any HTTP API that speaks OpenAI's chat completions (vLLM, Ollama,
llama.cpp's server, OpenAI itself...).

Async with pooled keep-alive connections per provider (:mod:`keel.models.http1`, or
``httpx`` when the environment routes the upstream through a proxy); always streams
from the upstream so that time to first token and stalls can be bounded. Every
failure becomes one of Keel's upstream errors, marked retryable or not, so the
wrappers around this provider (retries, breaker, fallback) can act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import httpx
import orjson

from keel.contract import ModelSpec
from keel.errors import UpstreamBadResponse, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable
from keel.models import http1
from keel.models.base import ChatMessage, Completion, GenerationRequest, StreamDelta, collect
from keel.tracing.context import current_traceparent

__all__ = ["OpenAICompatibleProvider", "uses_proxy"]

_PATH = "/chat/completions"
_DRAIN_S = 0.05
"""How long to wait, after ``[DONE]``, for the end of the body so that the connection can be reused."""


def uses_proxy(base_url: str) -> bool:
    """Whether the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) proxies ``base_url``."""
    origin = http1.Origin.parse(base_url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(origin.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(origin.host, proxies)  # type: ignore[attr-defined]


class _UpstreamResponse(Protocol):
    status_code: int
    headers: Mapping[str, str]

    async def next_lines(self, deadline: float) -> list[str]: ...

    async def read(self) -> bytes: ...


class _Transport(Protocol):
    def post(
        self, body: bytes, headers: Mapping[str, str] | None
    ) -> contextlib.AbstractAsyncContextManager[_UpstreamResponse]: ...

    async def aclose(self) -> None: ...


class _LeanTransport:
    """Direct connections (:class:`keel.models.http1.ConnectionPool`)."""

    def __init__(self, spec: ModelSpec, headers: Mapping[str, str]) -> None:
        assert spec.base_url is not None
        self._pool = http1.ConnectionPool(
            spec.base_url,
            max_connections=spec.max_concurrency,
            connect_timeout_s=spec.timeouts.connect_s,
            headers=headers,
        )

    def post(
        self, body: bytes, headers: Mapping[str, str] | None
    ) -> contextlib.AbstractAsyncContextManager[_UpstreamResponse]:
        return self._pool.request("POST", _PATH, body=body, headers=headers)

    async def aclose(self) -> None:
        await self._pool.aclose()


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._lines = response.aiter_lines()
        self.status_code = response.status_code
        self.headers: Mapping[str, str] = response.headers

    async def next_lines(self, deadline: float) -> list[str]:
        try:
            async with asyncio.timeout_at(deadline):
                return [await anext(self._lines)]
        except StopAsyncIteration:
            return []

    async def read(self) -> bytes:
        return await self._response.aread()


class _HttpxTransport:
    """Through the proxy the environment names (``httpx`` honours it)."""

    def __init__(self, spec: ModelSpec, headers: Mapping[str, str]) -> None:
        assert spec.base_url is not None
        timeouts = spec.timeouts
        self._url = httpx.URL(spec.base_url.rstrip("/") + _PATH)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeouts.total_s, connect=timeouts.connect_s),
            limits=httpx.Limits(max_connections=spec.max_concurrency, max_keepalive_connections=spec.max_concurrency),
            headers=dict(headers),
        )

    @contextlib.asynccontextmanager
    async def post(self, body: bytes, headers: Mapping[str, str] | None) -> AsyncIterator[_UpstreamResponse]:
        request_headers = {"content-type": "application/json", **(headers or {})}
        async with self._client.stream("POST", self._url, content=body, headers=request_headers) as response:
            yield _HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()


_TRANSPORT_ERRORS = (http1.HttpTransportError, httpx.TransportError)


class OpenAICompatibleProvider:
    """A :class:`~keel.models.base.Provider` for an OpenAI-compatible HTTP upstream."""

    def __init__(self, spec: ModelSpec, *, api_key: str | None = None) -> None:
        assert spec.base_url is not None
        http1.Origin.parse(spec.base_url)  # the contract validated it; fail here rather than per call
        self._spec = spec
        self._api_key = api_key
        self._transport: _Transport | None = None

    @property
    def name(self) -> str:
        """The contract name of the model."""
        return self._spec.name

    @property
    def ready(self) -> bool:
        """Ready once the connection pool exists (the upstream itself is checked per call)."""
        return self._transport is not None

    @property
    def via_proxy(self) -> bool:
        """Whether calls go through the environment's proxy (``httpx``) rather than direct connections."""
        return isinstance(self._transport, _HttpxTransport)

    async def warm_up(self) -> None:
        """Open the connection pool."""
        if self._transport is None:
            assert self._spec.base_url is not None
            headers = {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            proxied = uses_proxy(self._spec.base_url)
            self._transport = _HttpxTransport(self._spec, headers) if proxied else _LeanTransport(self._spec, headers)

    async def complete(self, request: GenerationRequest) -> Completion:
        """The whole answer."""
        return await collect(self.stream(request))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Stream the answer; raises an upstream error on any failure."""
        await self.warm_up()
        assert self._transport is not None
        timeouts = self._spec.timeouts
        body: dict[str, Any] = {
            "model": self._spec.upstream_model or self._spec.name,
            "messages": [_as_dict(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            body["stop"] = request.stop
        payload = orjson.dumps(body)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeouts.total_s
        first_deadline = min(deadline, started + timeouts.first_token_s)
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        finish: str | None = None
        traceparent = current_traceparent()
        headers = {"traceparent": traceparent} if traceparent else None
        try:
            # Waiting for a connection slot, connecting and the response headers all count
            # against the first-token limit (and the total).
            stack = contextlib.AsyncExitStack()
            async with stack:
                try:
                    async with asyncio.timeout_at(first_deadline):
                        response = await stack.enter_async_context(self._transport.post(payload, headers))
                except TimeoutError:
                    limit = first_deadline - started
                    raise UpstreamTimeout(f"The model {self.name} did not start answering within {limit:g}s.") from None
                await _raise_for_status(response, self.name)
                first = True
                done = False
                while True:
                    if done:  # after [DONE], only the end of the body (read so the connection is reused)
                        wait_until = min(loop.time() + _DRAIN_S, deadline)
                    elif first:
                        wait_until = first_deadline
                    else:
                        wait_until = min(loop.time() + timeouts.stall_s, deadline)
                    try:
                        lines = await response.next_lines(wait_until)
                    except TimeoutError:
                        if done:
                            break
                        if first:
                            what = f"start answering within {first_deadline - started:g}s"
                        elif wait_until >= deadline:
                            what = f"finish within {timeouts.total_s:g}s"
                        else:
                            what = f"continue its answer within {timeouts.stall_s:g}s"
                        raise UpstreamTimeout(f"The model {self.name} did not {what}.") from None
                    if not lines:
                        break
                    for line in lines:
                        if done or not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            continue
                        chunk = _parse_chunk(data, self.name)
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content") or ""
                            if piece:
                                first = False
                                parts.append(piece)
                                yield StreamDelta(text=piece)
                            finish = choice.get("finish_reason") or finish
        except (http1.ConnectTimeout, httpx.ConnectTimeout):
            raise UpstreamTimeout(f"Could not connect to the model {self.name} in {timeouts.connect_s:g}s.") from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"The model {self.name} timed out.") from None
        except http1.ProtocolFailure:
            raise UpstreamBadResponse(f"The model {self.name} sent a response that is not valid HTTP.") from None
        except _TRANSPORT_ERRORS as exc:
            raise UpstreamUnavailable(f"The model {self.name} is unreachable ({type(exc).__name__}).") from None
        if finish is None:
            raise UpstreamBadResponse(f"The model {self.name} stopped before finishing its answer.")
        text = "".join(parts)
        prompt_chars = sum(len(m.content) for m in request.messages)
        prompt_tokens = int(usage["prompt_tokens"]) if usage and "prompt_tokens" in usage else prompt_chars // 4 + 1
        completion_tokens = (
            int(usage["completion_tokens"]) if usage and "completion_tokens" in usage else len(text) // 4 + 1
        )
        yield StreamDelta(
            text="",
            completion=Completion(
                text=text,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish,
                model=self.name,
            ),
        )

    async def count_tokens(self, text: str) -> int:
        """An estimate: about four characters per token."""
        return len(text) // 4 + 1

    async def close(self) -> None:
        """Close the connection pool."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()


async def _raise_for_status(response: _UpstreamResponse, name: str) -> None:
    if response.status_code < 400:
        return
    await response.read()
    if response.status_code == 429:
        retry_after = _retry_after(response.headers.get("retry-after"))
        raise UpstreamRateLimited(f"The model {name} is rate-limited (429).", retry_after=retry_after)
    if response.status_code >= 500:
        raise UpstreamUnavailable(f"The model {name} failed ({response.status_code}).")
    raise UpstreamBadResponse(f"The model {name} rejected the request ({response.status_code}).")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _parse_chunk(payload: str, name: str) -> dict[str, Any]:
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"The model {name} sent a malformed stream.") from None
    if not isinstance(chunk, dict) or "error" in chunk:
        raise UpstreamBadResponse(f"The model {name} sent an error or an unexpected chunk.")
    return chunk


def _as_dict(message: ChatMessage) -> dict[str, str]:
    return {"role": message.role, "content": message.content}
