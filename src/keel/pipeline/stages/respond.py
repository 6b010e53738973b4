"""respond: settle the mode, the text the caller sees for it, and what is kept for next time.

* ``no_answer``: the contract's message; ``refused``: the policy's (or blocked
  topic's) message; ``sources_only``: the relevant passages as
  citations; ``clarify``: a question listing the candidate documents; ``handoff``: a
  queued hand-off, named in the answer.
* A verified answer is stored in the answer cache, scoped by the caller's permissions.
* When any component was degraded, the answer says that the service runs in a
  limited mode.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from keel.contract import PolicySettings
from keel.ops.handoffs import HandoffStore
from keel.pipeline.citations import citation_for
from keel.pipeline.context import RequestContext
from keel.pipeline.stages.route import cache_scope
from keel.policy.pii import redact
from keel.routing.cache import AnswerCache, CacheEntry

__all__ = ["RespondStage"]

SOURCES_ONLY_MESSAGE = "I could not write a verified answer; these are the passages most relevant to your question."
HANDOFF_MESSAGE = (
    "I have passed your question to a colleague (hand-off {id}). Their answer will appear in your hand-offs."
)


class RespondStage:
    """Fills the answer text for every mode, caches verified answers, queues hand-offs."""

    name: ClassVar[str] = "respond"
    always_runs: ClassVar[bool] = True

    def __init__(
        self, policy: PolicySettings, *, cache: AnswerCache, handoffs: HandoffStore, prompt_refs: dict[str, str]
    ) -> None:
        self._policy = policy
        self._cache = cache
        self._handoffs = handoffs
        self._prompt_refs = prompt_refs

    async def run(self, ctx: RequestContext) -> None:
        """Settle ``ctx.mode`` and ``ctx.answer``."""
        if ctx.mode is None:
            ctx.mode = "answer"
        if not ctx.release:
            prompt = ctx.app.pins.prompt or self._prompt_refs[ctx.app.name]
            ctx.release = prompt if ctx.index_version is None else f"{prompt}+index@{ctx.index_version}"
        if ctx.mode == "no_answer":
            ctx.answer = self._policy.no_answer_message
            ctx.citations = []
        elif ctx.mode == "refused":
            ctx.answer = ctx.answer or self._policy.refusal_message
            ctx.citations = []
        elif ctx.mode == "sources_only":
            if not ctx.answer:
                ctx.answer = SOURCES_ONLY_MESSAGE
            if not ctx.citations and ctx.evidence is not None:
                ctx.citations = [citation_for(hit, n) for n, hit in enumerate(ctx.evidence.passages, 1)]
        elif ctx.mode == "clarify":
            titles = list(dict.fromkeys(h.passage.title for h in ctx.clarify_topics))
            ctx.answer = (
                "Your question could be about several topics: " + "; ".join(titles) + ". Which one do you mean?"
            )
            ctx.citations = [citation_for(hit, n) for n, hit in enumerate(ctx.clarify_topics, 1)]
        elif ctx.mode == "handoff" and not ctx.shadow:
            await self._hand_off(ctx)
        if ctx.degraded and ctx.mode in ("answer", "sources_only"):
            note = (
                "Note: the service is running in a limited mode ("
                + "; ".join(f"{d.component}: {d.reason}" for d in ctx.degraded)
                + ")."
            )
            ctx.answer = f"{ctx.answer}\n\n{note}" if ctx.answer else note
        self._remember(ctx)
        if not ctx.streamed_text:
            await ctx.emit(ctx.answer)
        elif ctx.mode != "answer" or ctx.degraded:
            streamed = "".join(ctx.streamed_text)
            if ctx.answer.startswith(streamed):
                await ctx.emit(ctx.answer[len(streamed) :])
        ctx.current_span.decide(
            ctx.mode,
            answer_chars=len(ctx.answer),
            citations=[c.chunk_id for c in ctx.citations],
            degraded=[f"{d.component}: {d.reason}" for d in ctx.degraded],
            cache=ctx.cache,
            handoff=ctx.handoff_id,
        )

    async def _hand_off(self, ctx: RequestContext) -> None:
        assert ctx.principal is not None
        reason = ctx.route.reason if ctx.route is not None else "handed off"
        if ctx.degraded:
            reason = "; ".join(f"{d.component}: {d.reason}" for d in ctx.degraded)
        question = redact(ctx.question)
        handoff = await asyncio.to_thread(
            self._handoffs.create,
            request_id=ctx.request_id,
            tenant=ctx.principal.tenant,
            principal_id=ctx.principal.id,
            app=ctx.app.name,
            question=question,
            reason=reason,
        )
        ctx.handoff_id = handoff.handoff_id
        ctx.answer = HANDOFF_MESSAGE.format(id=handoff.handoff_id)
        ctx.citations = []

    def _remember(self, ctx: RequestContext) -> None:
        cacheable = (
            ctx.mode == "answer"
            and ctx.cache == "miss"
            and not ctx.degraded
            and ctx.app.retrieval
            and ctx.citations
            and ctx.index_version is not None
        )
        if not cacheable:
            return
        if ctx.shadow:
            return
        prompt = ctx.app.pins.prompt or self._prompt_refs[ctx.app.name]
        entry = CacheEntry(
            answer=ctx.answer,
            citations=tuple((c.number, c.chunk_id) for c in ctx.citations),
            model=ctx.model,
            strategy=ctx.answer_strategy,
            prompt=ctx.prompt_ref,
        )
        self._cache.store(cache_scope(ctx, prompt), ctx.question, ctx.query_vector, entry)
