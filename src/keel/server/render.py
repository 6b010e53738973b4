"""Turn a finished request context into response bodies."""

from __future__ import annotations

import time
from typing import Any

from keel.pipeline import RequestContext

__all__ = ["ask_body", "keel_extras"]


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
