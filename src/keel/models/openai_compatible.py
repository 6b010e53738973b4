"""A model behind any HTTP API that speaks OpenAI's chat completions (vLLM, Ollama,
llama.cpp's server, OpenAI itself...).

Async with a pooled connection per provider; always streams from the upstream so
that time to first token and stalls can be bounded. Every failure becomes one of
Keel's upstream errors, marked retryable or not, so the wrappers around this
provider (retries, breaker, fallback) can act on it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from keel.contract import ModelSpec
from keel.errors import UpstreamBadResponse, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable
from keel.models.base import ChatMessage, Completion, GenerationRequest, StreamDelta, collect
from keel.tracing.context import current_traceparent

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider:
    """A :class:`~keel.models.base.Provider` for an OpenAI-compatible HTTP upstream."""

    def __init__(self, spec: ModelSpec, *, api_key: str | None = None) -> None:
        assert spec.base_url is not None
        self._spec = spec
        self._url = httpx.URL(spec.base_url.rstrip("/") + "/chat/completions")  # parsed once, not per call
        self._api_key = api_key
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        """The contract name of the model."""
        return self._spec.name

    @property
    def ready(self) -> bool:
        """Ready once the connection pool exists (the upstream itself is checked per call)."""
        return self._client is not None

    async def warm_up(self) -> None:
        """Open the connection pool."""
        if self._client is None:
            timeouts = self._spec.timeouts
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeouts.total_s, connect=timeouts.connect_s),
                limits=httpx.Limits(
                    max_connections=self._spec.max_concurrency, max_keepalive_connections=self._spec.max_concurrency
                ),
                headers={"Authorization": f"Bearer {self._api_key}"} if self._api_key else {},
            )

    async def complete(self, request: GenerationRequest) -> Completion:
        """The whole answer."""
        return await collect(self.stream(request))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Stream the answer; raises an upstream error on any failure."""
        await self.warm_up()
        assert self._client is not None
        timeouts = self._spec.timeouts
        body = {
            "model": self._spec.upstream_model or self._spec.name,
            "messages": [_as_dict(m) for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            body["stop"] = request.stop
        started = time.monotonic()
        deadline = started + timeouts.total_s
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        finish: str | None = None
        try:
            traceparent = current_traceparent()
            headers = {"traceparent": traceparent} if traceparent else None
            async with self._client.stream("POST", self._url, json=body, headers=headers) as response:
                await _raise_for_status(response, self.name)
                lines = response.aiter_lines()
                first = True
                while True:
                    limit = timeouts.first_token_s if first else timeouts.stall_s
                    limit = min(limit, deadline - time.monotonic())
                    if limit <= 0:
                        raise UpstreamTimeout(f"The model {self.name} did not finish within {timeouts.total_s:g}s.")
                    try:
                        async with asyncio.timeout(limit):  # no task per line, unlike wait_for
                            line = await anext(lines)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        what = "start answering" if first else "continue its answer"
                        raise UpstreamTimeout(f"The model {self.name} did not {what} within {limit:g}s.") from None
                    if not line.startswith("data:"):
                        continue
                    payload = line.removeprefix("data:").strip()
                    if payload == "[DONE]":
                        break
                    chunk = _parse_chunk(payload, self.name)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            first = False
                            parts.append(piece)
                            yield StreamDelta(text=piece)
                        finish = choice.get("finish_reason") or finish
        except httpx.ConnectTimeout:
            raise UpstreamTimeout(f"Could not connect to the model {self.name} in {timeouts.connect_s:g}s.") from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"The model {self.name} timed out.") from None
        except httpx.TransportError as exc:
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
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def _raise_for_status(response: httpx.Response, name: str) -> None:
    if response.status_code < 400:
        return
    await response.aread()
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
        chunk = json.loads(payload)
    except json.JSONDecodeError:
        raise UpstreamBadResponse(f"The model {name} sent a malformed stream.") from None
    if not isinstance(chunk, dict) or "error" in chunk:
        raise UpstreamBadResponse(f"The model {name} sent an error or an unexpected chunk.")
    return chunk


def _as_dict(message: ChatMessage) -> dict[str, str]:
    return {"role": message.role, "content": message.content}
