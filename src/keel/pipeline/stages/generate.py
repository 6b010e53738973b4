"""generate: a grounded answer from the permitted passages, or a plain chat turn.

For apps that use retrieval, the selected passages are numbered into the app's
prompt template and the model is asked for an answer with ``[n]`` citations. Its
output is checked sentence by sentence as it arrives (see
:mod:`keel.pipeline.grounding`): supported sentences are kept (and streamed) with a
citation Keel verified; unsupported ones are dropped. When nothing the model said is
supported, or it says nothing about the question, or the model fails, the answer is
composed from the passages' own sentences instead (:mod:`keel.pipeline.extractive`).
"""

from __future__ import annotations

import logging
from typing import ClassVar

from keel.contract import Contract
from keel.errors import ModelUnavailable
from keel.models import ChatMessage, GenerationRequest
from keel.models.registry import ModelRegistry, cost_usd
from keel.pipeline.citations import citation_for
from keel.pipeline.context import Citation, Degradation, RequestContext
from keel.pipeline.extractive import extract_answer
from keel.pipeline.grounding import GroundedSentence, PassageFacts, ground_sentence
from keel.pipeline.prompts import PromptLibrary
from keel.retrieval.search import Hit
from keel.text import content_terms, sentences

__all__ = ["GenerateStage"]

log = logging.getLogger(__name__)

DEFAULT_PROMPT = "answer"


class GenerateStage:
    """Calls the routed model and keeps only what the passages support."""

    name: ClassVar[str] = "generate"
    always_runs: ClassVar[bool] = False

    def __init__(self, contract: Contract, *, models: ModelRegistry, prompts: PromptLibrary) -> None:
        self._contract = contract
        self._models = models
        self._prompts = prompts

    async def run(self, ctx: RequestContext) -> None:
        """Fill ``ctx.answer``, ``ctx.citations``, ``ctx.usage`` and ``ctx.cost_usd``."""
        if ctx.app.retrieval:
            await self._grounded(ctx)
        else:
            await self._plain(ctx)

    async def _grounded(self, ctx: RequestContext) -> None:
        assert ctx.evidence is not None and ctx.model is not None
        span = ctx.current_span
        passages = ctx.evidence.passages
        template = self._prompts.get(ctx.app.pins.prompt or DEFAULT_PROMPT)
        ctx.prompt_ref = template.ref
        numbered = "\n\n".join(f"[{i}] {_passage_label(h)}\n{h.passage.text}" for i, h in enumerate(passages, 1))
        messages = template.render(passages=numbered, question=ctx.question)
        spec = self._contract.model(ctx.model)
        facts = [PassageFacts.of(h.passage.text, h.passage.heading) for h in passages]
        q_terms = frozenset(content_terms(ctx.question))
        kept: list[GroundedSentence] = []
        dropped = 0
        answer = _AnswerBuilder(ctx, passages)
        buffer = ""
        generated = ""
        try:
            provider = self._models.get(ctx.model)
            request = GenerationRequest(
                messages=messages,
                max_tokens=min(ctx.max_tokens or spec.max_output_tokens, spec.max_output_tokens),
                temperature=spec.temperature if ctx.temperature is None else ctx.temperature,
            )
            async for delta in provider.stream(request):
                buffer += delta.text
                generated += delta.text
                if delta.completion is not None:
                    ctx.usage.prompt_tokens += delta.completion.prompt_tokens
                    ctx.usage.completion_tokens += delta.completion.completion_tokens
                    ctx.cost_usd += cost_usd(spec, delta.completion)
                    ctx.finish_reason = delta.completion.finish_reason
                complete, buffer = _complete_sentences(buffer)
                for sentence in complete:
                    grounded = ground_sentence(sentence, facts, question_terms=q_terms)
                    if grounded is None:
                        dropped += 1
                    else:
                        kept.append(grounded)
                        await answer.add(grounded.text, grounded.passage)
            for sentence in _all_sentences(buffer):
                grounded = ground_sentence(sentence, facts, question_terms=q_terms)
                if grounded is None:
                    dropped += 1
                else:
                    kept.append(grounded)
                    await answer.add(grounded.text, grounded.passage)
        except ModelUnavailable as exc:
            log.warning("model %s unavailable: %s", ctx.model, exc.message)
            ctx.degraded.append(Degradation(component=f"model:{ctx.model}", reason=exc.message))
        on_topic = any(content_terms(g.text) & q_terms for g in kept)
        if kept and on_topic:
            strategy = "generated"
        else:
            extracted = extract_answer(ctx.question, [(h.passage.heading, h.passage.text) for h in passages])
            for item in extracted:
                await answer.add(item.text, item.passage)
            strategy = ("generated+extractive" if kept else "extractive") if extracted else "none"
        ctx.answer = answer.text()
        ctx.citations = answer.citations()
        ctx.answer_strategy = strategy
        span.decide(
            strategy,
            model=ctx.model,
            prompt=template.ref,
            passages=[h.passage.chunk_id for h in passages],
            generated_chars=len(generated),
            sentences_kept=len(kept),
            sentences_dropped=dropped,
            prompt_tokens=ctx.usage.prompt_tokens,
            completion_tokens=ctx.usage.completion_tokens,
            finish_reason=ctx.finish_reason,
        )

    async def _plain(self, ctx: RequestContext) -> None:
        assert ctx.model is not None
        spec = self._contract.model(ctx.model)
        provider = self._models.get(ctx.model)
        messages = [*ctx.history, ChatMessage(role="user", content=ctx.question)]
        request = GenerationRequest(
            messages=messages,
            max_tokens=min(ctx.max_tokens or spec.max_output_tokens, spec.max_output_tokens),
            temperature=spec.temperature if ctx.temperature is None else ctx.temperature,
        )
        parts: list[str] = []
        async for delta in provider.stream(request):
            if delta.text:
                parts.append(delta.text)
                await ctx.emit(delta.text)
            if delta.completion is not None:
                ctx.usage.prompt_tokens += delta.completion.prompt_tokens
                ctx.usage.completion_tokens += delta.completion.completion_tokens
                ctx.cost_usd += cost_usd(spec, delta.completion)
                ctx.finish_reason = delta.completion.finish_reason
        ctx.answer = "".join(parts).strip()
        ctx.answer_strategy = "plain"
        ctx.current_span.decide(
            "plain",
            model=ctx.model,
            prompt_tokens=ctx.usage.prompt_tokens,
            completion_tokens=ctx.usage.completion_tokens,
            finish_reason=ctx.finish_reason,
        )


class _AnswerBuilder:
    """Collects verified sentences with citation numbers in order of first use, streaming each."""

    def __init__(self, ctx: RequestContext, passages: list[Hit]) -> None:
        self._ctx = ctx
        self._passages = passages
        self._numbers: dict[int, int] = {}
        self._parts: list[str] = []
        self._texts: set[str] = set()

    async def add(self, text: str, passage: int) -> None:
        key = " ".join(text.lower().split())
        if key in self._texts:
            return
        self._texts.add(key)
        number = self._numbers.setdefault(passage, len(self._numbers) + 1)
        sentence = text.rstrip()
        if sentence and sentence[-1] not in ".!?":
            sentence += "."
        piece = f"{sentence} [{number}]"
        await self._ctx.emit(piece if not self._parts else " " + piece)
        self._parts.append(piece)

    def text(self) -> str:
        return " ".join(self._parts)

    def citations(self) -> list[Citation]:
        return [
            citation_for(self._passages[passage_index], number)
            for passage_index, number in sorted(self._numbers.items(), key=lambda kv: kv[1])
        ]


def _complete_sentences(buffer: str) -> tuple[list[str], str]:
    """Sentences of ``buffer`` known to be complete, and the unfinished rest."""
    lines = buffer.split("\n")
    complete: list[str] = []
    for line in lines[:-1]:
        complete.extend(sentences(line))
    tail = sentences(lines[-1])
    if len(tail) > 1:
        complete.extend(tail[:-1])
        return complete, tail[-1]
    return complete, lines[-1]


def _all_sentences(text: str) -> list[str]:
    return [s for line in text.split("\n") for s in sentences(line)]


def _passage_label(hit: Hit) -> str:
    return f"({hit.passage.heading})"
