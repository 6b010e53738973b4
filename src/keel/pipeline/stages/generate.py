"""generate: an answer from the routed models, tried in order, kept only where the passages support it.

For apps that use retrieval, the selected passages are numbered into the app's
prompt template and each candidate model (cheapest first, see the route stage) is
asked in turn for an answer with ``[n]`` citations. Its output is checked sentence
by sentence as it arrives (see :mod:`keel.pipeline.grounding`): supported sentences
are kept (and streamed) with a citation Keel verified; unsupported ones are
dropped. When nothing the model said is supported, the answer is composed from the
passages' own sentences instead (:mod:`keel.models.extractive`).

A model that fails (timeout, breaker open, 429, 5xx, malformed or stalled stream)
is named in ``degraded`` and the next candidate is tried, unless text has already
reached the caller. Each call first reserves its worst-case cost against the
budgets; the actual cost is written to the ledger once, when the call succeeds.
When every candidate fails, the contract's fallback chain decides the mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

from keel.contract import Contract, ModelSpec
from keel.errors import ModelBusy, ModelUnavailable, UpstreamError
from keel.models import ChatMessage, GenerationRequest, StreamDelta
from keel.models.extractive import SentenceScorer, extract_answer
from keel.models.registry import ModelRegistry, cost_usd, estimate_cost_usd
from keel.ops.costs import CostLedger
from keel.pipeline.citations import citation_for
from keel.pipeline.context import Citation, Degradation, RequestContext
from keel.pipeline.fallback import apply_fallback
from keel.pipeline.grounding import GroundedSentence, PassageFacts, ground_sentence
from keel.pipeline.leakage import LeakDetector
from keel.pipeline.passages import delimit_passage
from keel.pipeline.prompts import PromptLibrary
from keel.policy.pii import PiiRecognizer
from keel.policy.stream import StreamRedactor
from keel.retrieval.search import Hit
from keel.routing.budgets import BudgetGuard
from keel.text import content_terms, sentences

__all__ = ["GenerateStage"]

log = logging.getLogger(__name__)

DEFAULT_PROMPT = "answer"
PROMPT_VARIABLES = ("passages", "question")
"""What generation fills in every template: a pinned template must declare exactly these."""
RELEVANCE_RATIO = 0.75
"""A generated answer stands alone only if it contains at least this share of what the best passage sentence does."""


class GenerateStage:
    """Calls the routed models in order and keeps only what the passages support."""

    name: ClassVar[str] = "generate"
    always_runs: ClassVar[bool] = False

    def __init__(
        self,
        contract: Contract,
        *,
        models: ModelRegistry,
        prompts: PromptLibrary,
        budgets: BudgetGuard,
        ledger: CostLedger,
        pii: PiiRecognizer,
        leakage: LeakDetector,
    ) -> None:
        self._contract = contract
        self._models = models
        self._prompts = prompts
        self._budgets = budgets
        self._ledger = ledger
        self._pii = pii
        self._leakage = leakage

    async def run(self, ctx: RequestContext) -> None:
        """Fill ``ctx.answer``, ``ctx.citations``, ``ctx.usage`` and ``ctx.cost_usd`` (or set a fallback mode)."""
        assert ctx.route is not None
        attempts: list[dict[str, object]] = []
        busy: list[ModelBusy] = []
        served = False
        for name in ctx.route.candidates:
            spec = self._contract.model(name)
            outcome = await self._attempt(ctx, spec, busy)
            attempts.append({"model": name, "outcome": outcome})
            if outcome == "ok":
                ctx.model = name
                served = True
                break
            if ctx.streamed_text:
                # Text already reached the caller: finish with it rather than start another answer.
                served = True
                break
        span = ctx.current_span
        if not served:
            ctx.model = None
            why = "; ".join(f"{a['model']}: {a['outcome']}" for a in attempts)
            try:
                step = apply_fallback(ctx, self._contract.routing.fallback, why)
            except ModelUnavailable:
                if busy and len(busy) == len(attempts):
                    # Every model is at capacity: a load-shedding answer the caller can retry, with Retry-After.
                    raise min(busy, key=lambda e: e.retry_after) from None
                raise
            span.decide(step, attempts=attempts, reason=why)
            return
        span.set(attempts=attempts)

    async def _attempt(self, ctx: RequestContext, spec: ModelSpec, busy: list[ModelBusy]) -> str:
        """Try one model; returns ``ok`` or the failure's reason (a :class:`ModelBusy` is also kept in ``busy``)."""
        assert ctx.principal is not None
        messages = self._messages(ctx)
        if not spec.is_trusted and self._contract.policy.pii.redact_for_external_models:
            # The model is outside the data boundary: it sees no personal data.
            messages = [ChatMessage(role=m.role, content=self._pii.redact(m.content)) for m in messages]
        request = self._request(ctx, spec, messages)
        prompt_tokens = sum(len(m.content) for m in messages) // 4 + 1
        estimate = estimate_cost_usd(spec, prompt_tokens, request.max_tokens)
        reservation = self._budgets.reserve(app=ctx.app.name, tenant=ctx.principal.tenant, amount=estimate)
        if reservation is None:
            reason = "budget would be exceeded"
            ctx.degraded.append(Degradation(component=f"budget:{spec.name}", reason=reason))
            return reason
        started = time.perf_counter()
        before = (ctx.usage.prompt_tokens, ctx.usage.completion_tokens)
        cost_before = ctx.cost_usd
        try:
            # One span per model call (a child of this stage's), current while the call runs, so the
            # upstream receives it as the parent in ``traceparent``.
            with ctx.trace.span(f"chat {spec.name}", parent=ctx.current_span) as call:
                call.set(
                    model=spec.name,
                    provider=spec.provider,
                    upstream_model=spec.upstream_model or spec.name,
                    model_version=spec.version,
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                )
                try:
                    if ctx.app.retrieval:
                        await self._grounded(ctx, spec, request)
                    else:
                        await self._plain(ctx, spec, request)
                finally:
                    call.set(
                        prompt_tokens=ctx.usage.prompt_tokens - before[0],
                        completion_tokens=ctx.usage.completion_tokens - before[1],
                        finish_reason=ctx.finish_reason,
                    )
                call.decision = "ok"
        except UpstreamError as exc:
            log.warning("model %s failed for %s: %s", spec.name, ctx.request_id, exc.code)
            if isinstance(exc, ModelBusy):
                busy.append(exc)
            ctx.degraded.append(Degradation(component=f"model:{spec.name}", reason=exc.message))
            return exc.code
        finally:
            # The call's cost turns from reserved into spent in one step (the ledger records it below).
            self._budgets.settle(reservation, spent_usd=0.0 if ctx.shadow else ctx.cost_usd - cost_before)
        self._models.observe_latency(spec.name, (time.perf_counter() - started) * 1000)
        if (ctx.usage.prompt_tokens or ctx.usage.completion_tokens or ctx.cost_usd) and not ctx.shadow:
            self._ledger.submit(  # committed by the ledger's writer thread; counted by budgets at once
                request_id=ctx.request_id,
                when=time.time(),
                tenant=ctx.principal.tenant,
                app=ctx.app.name,
                model=spec.name,
                prompt_tokens=ctx.usage.prompt_tokens,
                completion_tokens=ctx.usage.completion_tokens,
                cost_usd=ctx.cost_usd,
            )
        if ctx.app.retrieval and ctx.answer_strategy == "none":
            return "no verifiable answer"
        return "ok"

    def _messages(self, ctx: RequestContext) -> list[ChatMessage]:
        if not ctx.app.retrieval:
            return [*ctx.history, ChatMessage(role="user", content=ctx.question)]
        assert ctx.evidence is not None
        template = self._prompts.get(ctx.app.pins.prompt or DEFAULT_PROMPT)
        ctx.prompt_ref = template.ref
        numbered = "\n\n".join(
            delimit_passage(i, h.passage.heading, h.passage.text) for i, h in enumerate(ctx.evidence.passages, 1)
        )
        return template.render(passages=numbered, question=ctx.question)

    def _request(self, ctx: RequestContext, spec: ModelSpec, messages: list[ChatMessage]) -> GenerationRequest:
        passages = ctx.evidence.passages if ctx.evidence is not None else []
        return GenerationRequest(
            messages=messages,
            max_tokens=min(ctx.max_tokens or spec.max_output_tokens, spec.max_output_tokens),
            temperature=spec.temperature if ctx.temperature is None else ctx.temperature,
            question=ctx.question,
            passages=[(h.passage.heading, h.passage.text) for h in passages],
        )

    async def _grounded(self, ctx: RequestContext, spec: ModelSpec, request: GenerationRequest) -> None:
        assert ctx.evidence is not None
        passages = ctx.evidence.passages
        grounder = _Grounder(ctx, passages, screen=self._screen_sentence(ctx, passages))
        generated: list[str] = []
        buffer = ""
        try:
            async for delta in self._models.get(spec.name).stream(request):
                generated.append(delta.text)
                _account(ctx, spec, delta)
                complete, buffer = _complete_sentences(buffer + delta.text)
                await grounder.consider(complete)
            await grounder.consider(_all_sentences(buffer))
        except UpstreamError:
            if not grounder.kept:
                raise
            # Verified text already went out; keep it and say the answer was cut short.
            self._finish(ctx, grounder, "generated (interrupted)", spec, generated)
            raise
        extracted = extract_answer(ctx.question, [(h.passage.heading, h.passage.text) for h in passages])
        best_extracted = extracted[0].score if extracted else 0.0
        if grounder.kept and grounder.relevance() >= RELEVANCE_RATIO * best_extracted:
            strategy = "generated" if spec.provider != "extractive" else "extractive"
        else:
            # Nothing verified, or only verified sentences that answer less of the question than the
            # passages' own best sentence does: add (or use) the extractive answer.
            for item in extracted:
                await grounder.answer.add(item.text, item.passage)
            strategy = ("generated+extractive" if grounder.kept else "extractive") if extracted else "none"
        self._finish(ctx, grounder, strategy, spec, generated)

    def _finish(
        self, ctx: RequestContext, grounder: _Grounder, strategy: str, spec: ModelSpec, generated: list[str]
    ) -> None:
        ctx.answer = grounder.answer.text()
        ctx.citations = grounder.answer.citations()
        ctx.answer_strategy = strategy
        ctx.current_span.decide(
            strategy,
            model=spec.name,
            tier=spec.tier,
            prompt=ctx.prompt_ref,
            passages=[h.passage.chunk_id for h in grounder.passages],
            generated_chars=len("".join(generated)),
            sentences_kept=len(grounder.kept),
            sentences_dropped=grounder.dropped,
            prompt_tokens=ctx.usage.prompt_tokens,
            completion_tokens=ctx.usage.completion_tokens,
            finish_reason=ctx.finish_reason,
        )

    def _screen_sentence(self, ctx: RequestContext, passages: list[Hit]) -> Callable[[str], str | None]:
        """Before a sentence is streamed: drop it if it quotes the instructions, redact unsourced PII."""
        redact = self._contract.policy.pii.redact_unsourced_in_answers
        sources = [h.passage.text for h in passages]

        def screen(sentence: str) -> str | None:
            if self._leakage.overlap(sentence):
                ctx.guard_verdicts["stream"] = "dropped:system_prompt_leak"
                return None
            if not redact:
                return sentence
            return self._pii.redact(sentence, sources=sources)

        return screen

    async def _plain(self, ctx: RequestContext, spec: ModelSpec, request: GenerationRequest) -> None:
        parts: list[str] = []
        redactor = StreamRedactor(self._pii) if self._contract.policy.pii.redact_unsourced_in_answers else None
        async for delta in self._models.get(spec.name).stream(request):
            if delta.text:
                text = redactor.feed(delta.text) if redactor is not None else delta.text
                parts.append(text)
                await ctx.emit(text)
            _account(ctx, spec, delta)
        if redactor is not None:
            tail = redactor.finish()
            parts.append(tail)
            await ctx.emit(tail)
        ctx.answer = "".join(parts).strip()
        ctx.answer_strategy = "plain"
        ctx.current_span.decide(
            "plain",
            model=spec.name,
            tier=spec.tier,
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

    def __init__(self, ctx: RequestContext, passages: list[Hit], *, screen: Callable[[str], str | None]) -> None:
        self.passages = passages
        self.answer = _AnswerBuilder(ctx, passages, screen=screen)
        self.kept: list[GroundedSentence] = []
        self.dropped = 0
        self._facts = [PassageFacts.of(h.passage.text, h.passage.heading) for h in passages]
        self._question_terms = frozenset(content_terms(ctx.question))
        self._scorer = SentenceScorer(ctx.question, [(h.passage.heading, h.passage.text) for h in passages])

    async def consider(self, candidates: list[str]) -> None:
        for sentence in candidates:
            grounded = ground_sentence(sentence, self._facts, question_terms=self._question_terms)
            if grounded is None:
                self.dropped += 1
            else:
                self.kept.append(grounded)
                await self.answer.add(grounded.text, grounded.passage)

    def relevance(self) -> float:
        """How much of the question the best kept sentence contains (the extractive tier's measure)."""
        return max((self._scorer.score(g.text, g.passage) for g in self.kept), default=0.0)


class _AnswerBuilder:
    """Collects verified sentences with citation numbers in order of first use, streaming each."""

    def __init__(self, ctx: RequestContext, passages: list[Hit], *, screen: Callable[[str], str | None]) -> None:
        self._ctx = ctx
        self._passages = passages
        self._screen = screen
        self._numbers: dict[int, int] = {}
        self._parts: list[str] = []
        self._texts: set[str] = set()

    async def add(self, text: str, passage: int) -> None:
        screened = self._screen(text)
        if screened is None:
            return
        text = screened
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
