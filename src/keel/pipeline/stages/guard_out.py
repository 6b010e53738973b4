"""guard_out: the answer may cite only passages the caller was given, and must cite when policy says so."""

from __future__ import annotations

import re
from typing import ClassVar

from keel.contract import PolicySettings
from keel.pipeline.context import RequestContext

__all__ = ["OutputGuardStage"]

_MARKER = re.compile(r"\s*\[(\d{1,3})\]")


class OutputGuardStage:
    """Removes citations to anything outside the caller's retrieved passages; enforces mandatory citations."""

    name: ClassVar[str] = "guard_out"
    always_runs: ClassVar[bool] = False

    def __init__(self, policy: PolicySettings) -> None:
        self._policy = policy

    async def run(self, ctx: RequestContext) -> None:
        """Check ``ctx.citations`` and ``ctx.answer``."""
        span = ctx.current_span
        permitted = {h.passage.chunk_id for h in ctx.hits}
        valid = [c for c in ctx.citations if c.chunk_id in permitted]
        removed = len(ctx.citations) - len(valid)
        numbers = {c.number for c in valid}
        answer = _MARKER.sub(lambda m: m.group(0) if int(m.group(1)) in numbers else "", ctx.answer)
        ctx.citations = valid
        ctx.answer = answer
        verdict = "pass" if removed == 0 else "citations_removed"
        if ctx.app.retrieval and self._policy.require_citations and ctx.answer and not valid:
            verdict = "uncited_answer"
            ctx.answer = ""
            ctx.mode = "sources_only"
        elif ctx.app.retrieval and not ctx.answer:
            ctx.mode = "sources_only"
            verdict = "empty_answer"
        ctx.guard_verdicts["output"] = verdict
        span.decide(verdict, citations=len(valid), citations_removed=removed)
