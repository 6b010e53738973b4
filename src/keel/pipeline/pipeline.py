"""The ordered list of stages, run once per request, with one trace written at the end."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from keel.audit import AuditEvent, AuditLog
from keel.errors import ServiceError
from keel.pipeline.context import RequestContext
from keel.pipeline.stage import Stage
from keel.policy.pii import redact
from keel.tracing import TraceRecord, TraceStore

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

STATUS_CLIENT_CLOSED = 499


class Pipeline:
    """Runs stages in order; a stage that sets the mode makes later stages skip (except those that always run)."""

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        traces: TraceStore | None,
        audit: AuditLog | None = None,
        on_finish: Sequence[Callable[[RequestContext, int], None]] = (),
        on_recorded: Sequence[Callable[[TraceRecord], None]] = (),
        before_stage: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.stages = list(stages)
        self._on_recorded = list(on_recorded)
        self._before_stage = before_stage
        self.in_flight = 0
        """Requests running now (for shadow copies, which yield to live traffic)."""
        self._traces = traces
        self._audit = audit
        self._on_finish = list(on_finish)

    @property
    def stage_names(self) -> list[str]:
        """Stage names in order."""
        return [s.name for s in self.stages]

    async def run(self, ctx: RequestContext) -> RequestContext:
        """Run every stage on ``ctx``; always records the trace, also when a stage raises."""
        status = 200
        self.in_flight += 1
        try:
            for stage in self.stages:
                if ctx.mode is not None and not stage.always_runs:
                    ctx.trace.skip(stage.name, f"mode {ctx.mode} already decided")
                    continue
                if self._before_stage is not None:
                    await self._before_stage()
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
            self.in_flight -= 1
            ctx.span = None
            for hook in self._on_finish:
                try:
                    hook(ctx, status)
                except Exception:  # accounting after the fact must never fail the request
                    log.exception("finishing hook failed for %s", ctx.request_id)
            self._record(ctx, status)

    def _record(self, ctx: RequestContext, status: int) -> None:
        if self._traces is None:
            return
        clean = redact
        latency = ctx.trace.elapsed_ms()
        principal = ctx.principal
        data: dict[str, Any] = ctx.trace.to_dict()
        data["request"] = {
            "endpoint": ctx.endpoint,
            "app": ctx.app.name,
            "question": clean(ctx.question),
            "top_k": ctx.top_k,
            "tags": list(ctx.tags),
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
            "release": ctx.release,
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
        if self._audit is not None:
            self._audit.record(
                AuditEvent(
                    action="request",
                    actor=principal.id if principal else "-",
                    tenant=principal.tenant if principal else "-",
                    subject=ctx.request_id,
                    data={
                        "endpoint": ctx.endpoint,
                        "app": ctx.app.name,
                        "credential": principal.credential if principal else None,
                        "status": status,
                        "error": ctx.trace.attributes.get("error"),
                        "mode": ctx.mode,
                        "guard_verdicts": ctx.guard_verdicts,
                        "served": [{"doc_id": c.doc_id, "chunk_id": c.chunk_id} for c in ctx.citations],
                        "model": ctx.model,
                        "index_version": ctx.index_version,
                    },
                )
            )
            blocks = {k: v for k, v in ctx.guard_verdicts.items() if v.startswith("blocked")}
            if blocks:
                self._audit.record(
                    AuditEvent(
                        action="policy.block",
                        actor=principal.id if principal else "-",
                        tenant=principal.tenant if principal else "-",
                        subject=ctx.request_id,
                        data={"app": ctx.app.name, "verdicts": blocks},
                    )
                )
        record = TraceRecord(
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
            release=ctx.release,
            tags=ctx.tags,
            trace_id=ctx.trace.trace_id,
        )
        self._traces.save(record)
        for sink in self._on_recorded:
            try:
                sink(record)
            except Exception:  # telemetry after the fact must never fail the request
                log.exception("trace sink failed for %s", ctx.request_id)
