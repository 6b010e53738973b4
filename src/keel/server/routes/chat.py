"""POST /v1/chat/completions: OpenAI-compatible, non-streaming and SSE streaming.

The last user message is the question; retrieval applies as the app's contract says.
Keel's extras (request id, mode, citations, degradations) ride in a top-level ``keel``
object, and in the final chunk when streaming. A stream starts only once the first
verified text is ready, so every failure that can be reported as an HTTP error is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from keel.contract import App
from keel.errors import InvalidRequest, UnknownApp, UnknownModel
from keel.models import ChatMessage
from keel.pipeline import RequestContext
from keel.runtime import Runtime
from keel.server.deps import bearer, runtime_of
from keel.server.errors import request_id_of
from keel.server.render import json_bytes, json_response, keel_extras, unix_now
from keel.server.schemas import ChatCompletionRequest, ChatMessageIn, ErrorEnvelope

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/chat/completions",
    responses={400: {"model": ErrorEnvelope}, 401: {"model": ErrorEnvelope}},
    summary="OpenAI-compatible chat completions, grounded in your permitted documents",
)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """Answer the last user message; stream with ``"stream": true``."""
    runtime = runtime_of(request)
    app, model = _resolve(runtime, body, request.headers.get("x-keel-app"))
    question, history = _split_messages(body.messages)
    ctx = runtime.new_context(
        question=question,
        credential=bearer(request),
        endpoint="chat",
        app=app,
        request_id=request_id_of(request),
        top_k=body.top_k,
        history=history,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        model=model,
        tags=tuple(dict.fromkeys(body.tags)),
        traceparent=request.headers.get("traceparent"),
    )
    completion_id = "chatcmpl-" + ctx.request_id.removeprefix("req_")
    if not body.stream:
        await runtime.pipeline.run(ctx)
        return json_response(_completion_body(ctx, completion_id), headers=ctx.response_headers)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _stream(runtime, ctx, completion_id, include_usage)


def _resolve(runtime: Runtime, body: ChatCompletionRequest, header_app: str | None) -> tuple[App, str | None]:
    contract = runtime.contract
    app_name = body.app or header_app
    model_names = [m.name for m in contract.models]
    if app_name is not None:
        try:
            app = contract.app(app_name)
        except KeyError:
            raise UnknownApp(
                f"Unknown app {app_name!r}; the contract declares: {', '.join(a.name for a in contract.apps)}."
            ) from None
    else:
        app = None
    if body.model in model_names:
        return app or contract.default_app, body.model
    if app is None:
        try:
            return contract.app(body.model), None
        except KeyError:
            pass
    elif body.model == app.name:
        return app, None
    names = model_names + [a.name for a in contract.apps if a.name not in model_names]
    raise UnknownModel(f"Unknown model {body.model!r}; available: {', '.join(names)} (GET /v1/models).")


def _text_of(message: ChatMessageIn) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        else:
            raise InvalidRequest("Only text message content is supported.", code="invalid_parameter")
    return "\n".join(parts)


def _split_messages(messages: list[ChatMessageIn]) -> tuple[str, list[ChatMessage]]:
    last = messages[-1]
    if last.role != "user":
        raise InvalidRequest("The last message must have role 'user': it is the question.", code="invalid_parameter")
    history: list[ChatMessage] = []
    for message in messages[:-1]:
        role = {"developer": "system", "tool": "user"}.get(message.role, message.role)
        history.append(ChatMessage(role=role, content=_text_of(message)))  # type: ignore[arg-type]
    return _text_of(last), history


def _completion_body(ctx: RequestContext, completion_id: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": ctx.model or ctx.app.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ctx.answer},
                "finish_reason": _finish(ctx),
                "logprobs": None,
            }
        ],
        "usage": _usage(ctx),
        "keel": keel_extras(ctx),
    }


def _usage(ctx: RequestContext) -> dict[str, int]:
    return {
        "prompt_tokens": ctx.usage.prompt_tokens,
        "completion_tokens": ctx.usage.completion_tokens,
        "total_tokens": ctx.usage.prompt_tokens + ctx.usage.completion_tokens,
    }


def _finish(ctx: RequestContext) -> str:
    return "length" if ctx.finish_reason == "length" and ctx.mode == "answer" else "stop"


_DONE = object()


async def _stream(runtime: Runtime, ctx: RequestContext, completion_id: str, include_usage: bool) -> StreamingResponse:
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def sink(text: str) -> None:
        await queue.put(text)

    ctx.stream = sink
    task = asyncio.create_task(runtime.pipeline.run(ctx))
    task.add_done_callback(lambda _: queue.put_nowait(_DONE))
    first = await queue.get()
    if first is _DONE:
        # Finished before any text: errors surface as ordinary HTTP errors.
        exc = task.exception()
        if exc is not None:
            raise exc
    created = unix_now()

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": ctx.model or ctx.app.name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json_bytes(body).decode()}\n\n"

    async def events() -> AsyncIterator[str]:
        try:
            yield chunk({"role": "assistant", "content": ""})
            item = first
            while item is not _DONE:
                yield chunk({"content": item})
                item = await queue.get()
            exc = task.exception()
            if exc is not None:
                code = getattr(exc, "code", "internal_error")
                message = getattr(exc, "message", "The answer could not be completed.")
                error = {"error": {"code": code, "message": message, "request_id": ctx.request_id}}
                yield f"data: {json.dumps(error)}\n\n"
            else:
                extra: dict[str, Any] = {"keel": keel_extras(ctx)}
                if include_usage:
                    extra["usage"] = _usage(ctx)
                yield chunk({}, _finish(ctx), **extra)
            yield "data: [DONE]\n\n"
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            "X-Request-ID": ctx.request_id,
            **ctx.response_headers,
        },
    )
