"""guard_out: the answer may cite only passages the caller may read, and must cite when policy says so."""

from __future__ import annotations

import asyncio
import re
from typing import ClassVar

from keel.contract import PolicySettings
from keel.pipeline.context import Citation, RequestContext
from keel.retrieval.versions import IndexStore

__all__ = ["OutputGuardStage"]

_MARKER = re.compile(r"\s*\[(\d{1,3})\]")


class OutputGuardStage:
    """Removes citations the caller may not read; an uncited answer becomes ``sources_only``.

    It runs for every served answer, cached ones included: a citation stays only if
    the passage exists in the active index and one of its groups is the caller's.
    """

    name: ClassVar[str] = "guard_out"
    always_runs: ClassVar[bool] = True

    def __init__(self, policy: PolicySettings, *, index: IndexStore) -> None:
        self._policy = policy
        self._index = index

    async def run(self, ctx: RequestContext) -> None:
        """Check ``ctx.citations`` and ``ctx.answer``."""
        span = ctx.current_span
        retrieved = {h.passage.chunk_id for h in ctx.hits}
        valid = [c for c in ctx.citations if c.chunk_id in retrieved]
        unchecked = [c for c in ctx.citations if c.chunk_id not in retrieved]
        if unchecked:
            valid += await asyncio.to_thread(self._readable, ctx, unchecked)
        valid.sort(key=lambda c: c.number)
        removed = len(ctx.citations) - len(valid)
        numbers = {c.number for c in valid}
        ctx.answer = _MARKER.sub(lambda m: m.group(0) if int(m.group(1)) in numbers else "", ctx.answer)
        ctx.citations = valid
        verdict = "pass" if removed == 0 else "citations_removed"
        serving_answer = ctx.mode in (None, "answer")
        if serving_answer and ctx.app.retrieval and self._policy.require_citations and ctx.answer and not valid:
            verdict = "uncited_answer"
            ctx.answer = ""
            ctx.mode = "sources_only"
        elif ctx.mode is None and ctx.app.retrieval and not ctx.answer:
            ctx.mode = "sources_only"
            verdict = "empty_answer"
        ctx.guard_verdicts["output"] = verdict
        span.decide(verdict, citations=len(valid), citations_removed=removed)

    def _readable(self, ctx: RequestContext, citations: list[Citation]) -> list[Citation]:
        assert ctx.principal is not None
        snapshot = self._index.current()
        keep = []
        for citation in citations:
            passage = snapshot.passage_by_id(citation.chunk_id)
            if passage is not None and set(passage.groups) & ctx.principal.groups:
                keep.append(citation)
        return keep
