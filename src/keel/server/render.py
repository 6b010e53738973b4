"""Turn a finished request context into response bodies."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from keel.pipeline import RequestContext

__all__ = ["ask_body", "json_bytes", "json_response", "keel_extras"]

_OPTIONS = orjson.OPT_NON_STR_KEYS


def json_bytes(body: Any) -> bytes:
    """``body`` as compact UTF-8 JSON (anything not JSON-native as its ``str``)."""
    return orjson.dumps(body, default=str, option=_OPTIONS)


def json_response(body: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response, encoded with ``orjson`` (several times faster than the standard library)."""
    return Response(json_bytes(body), status_code=status_code, headers=headers, media_type="application/json")


def _citations(ctx: RequestContext) -> list[dict[str, Any]]:
    return [
        {
            "id": c.chunk_id,
            "number": c.number,
            "doc_id": c.doc_id,
            "title": c.title,
            "source": c.source,
            "snippet": c.snippet,
            "score": c.score,
        }
        for c in ctx.citations
    ]


def keel_extras(ctx: RequestContext) -> dict[str, Any]:
    """Keel's fields that an OpenAI response has no place for."""
    return {
        "request_id": ctx.request_id,
        "mode": ctx.mode,
        "citations": _citations(ctx),
        "degraded": [{"component": d.component, "reason": d.reason} for d in ctx.degraded],
        "cost_usd": round(ctx.cost_usd, 8),
        "model": ctx.model,
        "app": ctx.app.name,
        "index_version": ctx.index_version,
        "prompt": ctx.prompt_ref,
        "cache": ctx.cache,
        "handoff_id": ctx.handoff_id,
    }


def ask_body(ctx: RequestContext) -> dict[str, Any]:
    """The ``POST /v1/ask`` response."""
    return {
        "request_id": ctx.request_id,
        "mode": ctx.mode,
        "answer": ctx.answer,
        "citations": _citations(ctx),
        "model": ctx.model,
        "usage": {"prompt_tokens": ctx.usage.prompt_tokens, "completion_tokens": ctx.usage.completion_tokens},
        "cost_usd": round(ctx.cost_usd, 8),
        "latency_ms": round(ctx.trace.elapsed_ms(), 2),
        "degraded": [{"component": d.component, "reason": d.reason} for d in ctx.degraded],
        "index_version": ctx.index_version,
        "prompt": ctx.prompt_ref,
        "cache": ctx.cache,
        "handoff_id": ctx.handoff_id,
    }


def unix_now() -> int:
    """Seconds since the epoch."""
    return int(time.time())
