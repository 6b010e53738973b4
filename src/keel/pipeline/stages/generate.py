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

from keel.contract import Contract, ModelSpec
from keel.errors import ModelUnavailable
from keel.models import ChatMessage, GenerationRequest, StreamDelta
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

    def _request(self, ctx: RequestContext, spec: ModelSpec, messages: list[ChatMessage]) -> GenerationRequest:
        return GenerationRequest(
            messages=messages,
            max_tokens=min(ctx.max_tokens or spec.max_output_tokens, spec.max_output_tokens),
            temperature=spec.temperature if ctx.temperature is None else ctx.temperature,
        )

    async def _grounded(self, ctx: RequestContext) -> None:
        assert ctx.evidence is not None and ctx.model is not None
        passages = ctx.evidence.passages
        template = self._prompts.get(ctx.app.pins.prompt or DEFAULT_PROMPT)
        ctx.prompt_ref = template.ref
        numbered = "\n\n".join(f"[{i}] ({h.passage.heading})\n{h.passage.text}" for i, h in enumerate(passages, 1))
        spec = self._contract.model(ctx.model)
        request = self._request(ctx, spec, template.render(passages=numbered, question=ctx.question))
        grounder = _Grounder(ctx, passages)
        generated: list[str] = []
        buffer = ""
        try:
            async for delta in self._models.get(ctx.model).stream(request):
                generated.append(delta.text)
                _account(ctx, spec, delta)
                complete, buffer = _complete_sentences(buffer + delta.text)
                await grounder.consider(complete)
            await grounder.consider(_all_sentences(buffer))
        except ModelUnavailable as exc:
            log.warning("model %s unavailable: %s", ctx.model, exc.message)
            ctx.degraded.append(Degradation(component=f"model:{ctx.model}", reason=exc.message))
        if grounder.kept and grounder.on_topic():
            strategy = "generated"
        else:
            extracted = extract_answer(ctx.question, [(h.passage.heading, h.passage.text) for h in passages])
            for item in extracted:
                await grounder.answer.add(item.text, item.passage)
            strategy = ("generated+extractive" if grounder.kept else "extractive") if extracted else "none"
        ctx.answer = grounder.answer.text()
        ctx.citations = grounder.answer.citations()
        ctx.answer_strategy = strategy
        ctx.current_span.decide(
            strategy,
            model=ctx.model,
            prompt=template.ref,
            passages=[h.passage.chunk_id for h in passages],
            generated_chars=len("".join(generated)),
            sentences_kept=len(grounder.kept),
            sentences_dropped=grounder.dropped,
            prompt_tokens=ctx.usage.prompt_tokens,
            completion_tokens=ctx.usage.completion_tokens,
            finish_reason=ctx.finish_reason,
        )

    async def _plain(self, ctx: RequestContext) -> None:
        assert ctx.model is not None
        spec = self._contract.model(ctx.model)
        request = self._request(ctx, spec, [*ctx.history, ChatMessage(role="user", content=ctx.question)])
        parts: list[str] = []
        async for delta in self._models.get(ctx.model).stream(request):
            if delta.text:
                parts.append(delta.text)
                await ctx.emit(delta.text)
            _account(ctx, spec, delta)
        ctx.answer = "".join(parts).strip()
        ctx.answer_strategy = "plain"
        ctx.current_span.decide(
            "plain",
            model=ctx.model,
            prompt_tokens=ctx.usage.prompt_tokens,
            completion_tokens=ctx.usage.completion_tokens,
            finish_reason=ctx.finish_reason,
        )


def _account(ctx: RequestContext, spec: ModelSpec, delta: StreamDelta) -> None:
    """Add a finished completion's tokens and cost to the request."""
    if delta.completion is None:
        return
    ctx.usage.prompt_tokens += delta.completion.prompt_tokens
    ctx.usage.completion_tokens += delta.completion.completion_tokens
    ctx.cost_usd += cost_usd(spec, delta.completion)
    ctx.finish_reason = delta.completion.finish_reason


class _Grounder:
    """Checks generated sentences against the passages, keeping (and streaming) the supported ones."""

    def __init__(self, ctx: RequestContext, passages: list[Hit]) -> None:
        self.answer = _AnswerBuilder(ctx, passages)
        self.kept: list[GroundedSentence] = []
        self.dropped = 0
        self._facts = [PassageFacts.of(h.passage.text, h.passage.heading) for h in passages]
        self._question_terms = frozenset(content_terms(ctx.question))

    async def consider(self, sentences: list[str]) -> None:
        for sentence in sentences:
            grounded = ground_sentence(sentence, self._facts, question_terms=self._question_terms)
            if grounded is None:
                self.dropped += 1
            else:
                self.kept.append(grounded)
                await self.answer.add(grounded.text, grounded.passage)

    def on_topic(self) -> bool:
        """Whether any kept sentence speaks to the question at all."""
        return any(content_terms(g.text) & self._question_terms for g in self.kept)


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
