"""The ordered list of stages, run once per request, with one trace written at the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from keel.errors import ServiceError
from keel.pipeline.context import RequestContext
from keel.pipeline.stage import Stage
from keel.policy.pii import redact
from keel.tracing import TraceRecord, TraceStore

__all__ = ["Pipeline"]

STATUS_CLIENT_CLOSED = 499


class Pipeline:
    """Runs stages in order; a stage that sets the mode makes later stages skip (except those that always run)."""

    def __init__(self, stages: Sequence[Stage], *, traces: TraceStore, redact_pii: bool = True) -> None:
        self.stages = list(stages)
        self._traces = traces
        self._redact_pii = redact_pii

    @property
    def stage_names(self) -> list[str]:
        """Stage names in order."""
        return [s.name for s in self.stages]

    async def run(self, ctx: RequestContext) -> RequestContext:
        """Run every stage on ``ctx``; always records the trace, also when a stage raises."""
        status = 200
        try:
            for stage in self.stages:
                if ctx.mode is not None and not stage.always_runs:
                    ctx.trace.skip(stage.name, f"mode {ctx.mode} already decided")
                    continue
                with ctx.trace.span(stage.name) as span:
                    ctx.span = span
                    await stage.run(ctx)
            return ctx
        except ServiceError as exc:
            status = exc.http_status
            ctx.trace.attributes["error"] = exc.code
            raise
        except asyncio.CancelledError:
            status = STATUS_CLIENT_CLOSED
            ctx.trace.attributes["error"] = "client_closed"
            raise
        except Exception:
            status = 500
            ctx.trace.attributes["error"] = "internal_error"
            raise
        finally:
            ctx.span = None
            self._record(ctx, status)

    def _record(self, ctx: RequestContext, status: int) -> None:
        clean = redact if self._redact_pii else (lambda text: text)
        latency = ctx.trace.elapsed_ms()
        principal = ctx.principal
        data: dict[str, Any] = ctx.trace.to_dict()
        data["request"] = {
            "endpoint": ctx.endpoint,
            "app": ctx.app.name,
            "question": clean(ctx.question),
            "top_k": ctx.top_k,
        }
        data["response"] = {
            "status": status,
            "mode": ctx.mode,
            "answer": clean(ctx.answer),
            "answer_strategy": ctx.answer_strategy,
            "citations": [
                {"number": c.number, "chunk_id": c.chunk_id, "doc_id": c.doc_id, "title": c.title, "source": c.source}
                for c in ctx.citations
            ],
            "model": ctx.model,
            "prompt": ctx.prompt_ref,
            "index_version": ctx.index_version,
            "route": {
                "model": ctx.route.model,
                "reason": ctx.route.reason,
                "candidates": ctx.route.candidates,
                "skipped": [{"model": m, "reason": r} for m, r in ctx.route.skipped],
            }
            if ctx.route
            else None,
            "usage": {"prompt_tokens": ctx.usage.prompt_tokens, "completion_tokens": ctx.usage.completion_tokens},
            "cost_usd": ctx.cost_usd,
            "degraded": [{"component": d.component, "reason": d.reason} for d in ctx.degraded],
            "guard_verdicts": ctx.guard_verdicts,
            "cache": ctx.cache,
            "handoff_id": ctx.handoff_id,
            "latency_ms": round(latency, 2),
        }
        self._traces.save(
            TraceRecord(
                request_id=ctx.request_id,
                created_at=time.time(),
                principal_id=principal.id if principal else "-",
                tenant=principal.tenant if principal else "-",
                app=ctx.app.name,
                endpoint=ctx.endpoint,
                mode=ctx.mode or "error",
                status=status,
                latency_ms=latency,
                data=data,
            )
        )
