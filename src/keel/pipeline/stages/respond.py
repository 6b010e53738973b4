"""respond: settle the mode and the text the caller sees for it."""

from __future__ import annotations

from typing import ClassVar

from keel.contract import PolicySettings
from keel.pipeline.citations import citation_for
from keel.pipeline.context import RequestContext

__all__ = ["RespondStage"]

SOURCES_ONLY_MESSAGE = "I could not write a verified answer; these are the passages most relevant to your question."


class RespondStage:
    """Fills the answer text for non-answer modes and records the final outcome."""

    name: ClassVar[str] = "respond"
    always_runs: ClassVar[bool] = True

    def __init__(self, policy: PolicySettings) -> None:
        self._policy = policy

    async def run(self, ctx: RequestContext) -> None:
        """Settle ``ctx.mode`` and ``ctx.answer``."""
        if ctx.mode is None:
            ctx.mode = "answer"
        if ctx.mode == "no_answer":
            ctx.answer = self._policy.no_answer_message
            ctx.citations = []
        elif ctx.mode == "sources_only":
            if not ctx.answer:
                ctx.answer = SOURCES_ONLY_MESSAGE
            if not ctx.citations and ctx.evidence is not None:
                ctx.citations = [citation_for(hit, n) for n, hit in enumerate(ctx.evidence.passages, 1)]
        if ctx.degraded and ctx.mode in ("answer", "sources_only"):
            note = (
                "Note: the service is running in a limited mode ("
                + "; ".join(f"{d.component}: {d.reason}" for d in ctx.degraded)
                + ")."
            )
            ctx.answer = f"{ctx.answer}\n\n{note}" if ctx.answer else note
        if not ctx.streamed_text:
            await ctx.emit(ctx.answer)
        elif ctx.mode != "answer" or ctx.degraded:
            # The streamed answer is complete; a limited-mode note still has to reach the caller.
            streamed = "".join(ctx.streamed_text)
            if ctx.answer.startswith(streamed):
                await ctx.emit(ctx.answer[len(streamed) :])
        ctx.current_span.decide(
            ctx.mode,
            answer_chars=len(ctx.answer),
            citations=[c.chunk_id for c in ctx.citations],
            degraded=[f"{d.component}: {d.reason}" for d in ctx.degraded],
        )
