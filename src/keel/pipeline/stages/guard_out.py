"""guard_out: what leaves Keel may cite only permitted passages, names no unsourced PII, and leaks nothing.

Checks, in order, for every served answer (cached ones included):

1. citations: each must name a passage in the active index that the caller may read;
   others are removed with their markers;
2. mandatory citations: an answer left without one becomes ``sources_only`` or a
   refusal, per ``policy.on_uncited``;
3. system-prompt leakage: an answer repeating the prompt template's instructions is refused;
4. blocked topics named in the answer are refused;
5. PII in the answer that no permitted passage contains is redacted.
"""

from __future__ import annotations

import asyncio
import re
from typing import ClassVar

from keel.contract import PolicySettings
from keel.pipeline.context import Citation, RequestContext
from keel.pipeline.leakage import LeakDetector
from keel.policy.pii import PiiRecognizer
from keel.policy.topics import TopicMatcher
from keel.retrieval.versions import IndexStore

__all__ = ["OutputGuardStage"]

_MARKER = re.compile(r"\s*\[(\d{1,3})\]")


class OutputGuardStage:
    """Validates citations, enforces citation policy, and screens the answer text."""

    name: ClassVar[str] = "guard_out"
    always_runs: ClassVar[bool] = True

    def __init__(
        self,
        policy: PolicySettings,
        *,
        index: IndexStore,
        pii: PiiRecognizer,
        topics: TopicMatcher,
        leakage: LeakDetector,
    ) -> None:
        self._policy = policy
        self._index = index
        self._pii = pii
        self._topics = topics
        self._leakage = leakage

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
        details: dict[str, object] = {"citations": len(valid), "citations_removed": removed}
        serving_answer = ctx.mode in (None, "answer")
        if serving_answer and ctx.app.retrieval and self._policy.require_citations and ctx.answer and not valid:
            verdict = "uncited_answer"
            ctx.answer = ""
            if self._policy.on_uncited == "refuse":
                ctx.mode = "refused"
                ctx.answer = self._policy.refusal_message
                verdict = "blocked:uncited_answer"
            else:
                ctx.mode = "sources_only"
        elif ctx.mode is None and ctx.app.retrieval and not ctx.answer:
            ctx.mode = "sources_only"
            verdict = "empty_answer"
        if serving_answer and ctx.answer and ctx.mode in (None, "answer"):
            verdict = self._screen(ctx, verdict, details)
        ctx.guard_verdicts["output"] = verdict
        span.decide(verdict, **details)

    def _screen(self, ctx: RequestContext, verdict: str, details: dict[str, object]) -> str:
        overlap = self._leakage.overlap(ctx.answer)
        if overlap:
            details["prompt_overlap"] = overlap
            ctx.mode, ctx.answer, ctx.citations = "refused", self._policy.refusal_message, []
            return "blocked:system_prompt_leak"
        topic = self._topics.match(ctx.answer)
        if topic is not None:
            ctx.mode, ctx.answer, ctx.citations = "refused", topic.message, []
            return f"blocked:topic:{topic.name}"
        if self._policy.pii.redact_unsourced_in_answers:
            redacted = self._pii.redact(ctx.answer, sources=[h.passage.text for h in ctx.hits])
            if redacted != ctx.answer:
                details["pii_redacted"] = True
                ctx.answer = redacted
                return "pii_redacted" if verdict == "pass" else verdict + "+pii_redacted"
        return verdict

    def _readable(self, ctx: RequestContext, citations: list[Citation]) -> list[Citation]:
        assert ctx.principal is not None
        snapshot = self._index.snapshot(ctx.index_version)
        keep = []
        groups = ctx.principal.acl_groups
        for citation in citations:
            passage = snapshot.passage_by_id(citation.chunk_id)
            if passage is not None and set(passage.groups) & groups:
                keep.append(citation)
        return keep
