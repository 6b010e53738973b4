"""route: how the request is served, cheapest first.

In order: no evidence means ``no_answer`` (or a hand-off) without any model; then
the exact and the semantic answer caches, scoped by the caller's permissions; then
a clarifying question when a short question matches several topics; then the plan
of models to try (see :mod:`keel.routing.planner`), each checked against its
breaker, the cost envelope, the budgets and the latency target. Every decision and
every model left out is written on the span with its reason.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from keel.contract import Contract
from keel.ingest.acl import source_for
from keel.models.registry import ModelRegistry
from keel.pipeline.citations import citation_for
from keel.pipeline.context import Degradation, RequestContext, RouteDecision
from keel.pipeline.fallback import apply_fallback
from keel.retrieval.search import Hit
from keel.retrieval.versions import IndexStore
from keel.routing.budgets import BudgetGuard
from keel.routing.cache import AnswerCache, CacheEntry, CacheScope, permission_fingerprint
from keel.routing.clarify import ambiguous_topics
from keel.routing.complexity import estimate_complexity
from keel.routing.planner import plan_route

__all__ = ["RouteStage", "cache_scope"]

PROMPT_OVERHEAD_TOKENS = 120
SOURCE_MARGIN = 0.1
"""Documents whose best passage is this close to the best one count as sources the answer needs."""


def allowed_regions(contract: Contract, tenant: str, passages: list[Hit]) -> frozenset[str] | None:
    """Regions whose models may see this request: the tenant's, narrowed by each passage source's region."""
    allowed = contract.tenant_regions(tenant)
    regions = frozenset(allowed) if allowed is not None else None
    for hit in passages:
        source = source_for(contract, hit.passage.path)
        if source is not None and source.region is not None:
            regions = (regions if regions is not None else frozenset({source.region})) & {source.region}
    return regions


def _source_documents(passages: list[Hit]) -> int:
    """How many documents the evidence really draws on (near-best passages only)."""
    scores = [h.dense_score for h in passages if h.dense_score is not None]
    if not scores:
        return len({h.passage.doc_id for h in passages})
    best = max(scores)
    return len({h.passage.doc_id for h in passages if (h.dense_score or 0) >= best - SOURCE_MARGIN})


def cache_scope(ctx: RequestContext, prompt: str) -> CacheScope:
    """The cache scope of a request: app, prompt, pinned model, index version and the caller's permissions.

    A release pinned to another model never serves an answer cached from this one.
    """
    assert ctx.principal is not None and ctx.index_version is not None
    return CacheScope(
        app=ctx.app.name,
        prompt=prompt if ctx.app.pins.model is None else f"{prompt}|{ctx.app.pins.model}",
        index_version=ctx.index_version,
        fingerprint=permission_fingerprint(ctx.principal.tenant, ctx.principal.groups),
    )


class RouteStage:
    """Chooses cache, clarification or the models to try, within the contract."""

    name: ClassVar[str] = "route"
    always_runs: ClassVar[bool] = False

    def __init__(
        self,
        contract: Contract,
        *,
        models: ModelRegistry,
        cache: AnswerCache,
        budgets: BudgetGuard,
        index: IndexStore,
        prompt_refs: dict[str, str],
    ) -> None:
        self._contract = contract
        self._models = models
        self._cache = cache
        self._budgets = budgets
        self._index = index
        self._prompt_refs = prompt_refs

    async def run(self, ctx: RequestContext) -> None:
        """Set ``ctx.route``, or the mode when no model is needed."""
        span = ctx.current_span
        routing = self._contract.routing
        complexity = None
        if ctx.app.retrieval:
            evidence = ctx.evidence
            if evidence is None or not evidence.sufficient:
                reason = f"no evidence: {evidence.reason if evidence else 'no retrieval result'}"
                ctx.route = RouteDecision(model=None, reason=reason)
                ctx.mode = "handoff" if routing.on_no_evidence == "handoff" else "no_answer"
                span.decide(ctx.mode, reason=reason)
                return
            if await self._serve_from_cache(ctx):
                return
            assert ctx.question_terms is not None
            topics = ambiguous_topics(ctx.question_terms, ctx.assessed, routing.clarify)
            if topics:
                ctx.mode = "clarify"
                ctx.clarify_topics = [t.hit for t in topics]
                ctx.route = RouteDecision(model=None, reason=f"ambiguous between {len(topics)} documents")
                span.decide("clarify", reason=ctx.route.reason, cache=ctx.cache)
                return
            complexity = estimate_complexity(ctx.question, _source_documents(evidence.passages), routing.complexity)
        principal = ctx.principal
        assert principal is not None
        prompt_tokens = self._estimate_prompt_tokens(ctx)
        plan = plan_route(
            self._contract,
            ctx.app,
            complexity=complexity,
            requested=ctx.model,
            health=self._models.health,
            budget_allows=lambda spec, estimate: self._budgets.blocking(
                app=ctx.app.name, tenant=principal.tenant, estimate=estimate
            ),
            prompt_tokens=prompt_tokens,
            regions=allowed_regions(self._contract, principal.tenant, ctx.evidence.passages if ctx.evidence else []),
        )
        candidates = [m.name for m in plan.candidates]
        ctx.route = RouteDecision(
            model=candidates[0] if candidates else None,
            reason=plan.reason,
            candidates=candidates,
            skipped=plan.skipped,
        )
        for model, why in plan.skipped:
            if why.startswith("budget"):
                ctx.degraded.append(Degradation(component=f"budget:{model}", reason=why))
            elif why == "circuit breaker open":
                ctx.degraded.append(
                    Degradation(component=f"model:{model}", reason="circuit breaker open after repeated failures")
                )
        if candidates:
            ctx.model = candidates[0]
            span.decide(
                candidates[0],
                reason=plan.reason,
                candidates=candidates,
                skipped=[{"model": m, "reason": r} for m, r in plan.skipped],
                complexity=complexity.describe() if complexity else None,
                estimated_prompt_tokens=prompt_tokens,
                cache=ctx.cache,
            )
            return
        ctx.model = None
        why = "; ".join(f"{m}: {r}" for m, r in plan.skipped) or "no model declared for this app"
        ctx.degraded.append(Degradation(component="routing", reason=f"no model can serve ({why})"))
        on_budget = self._contract.cost.on_budget_exceeded
        if plan.budget_blocked and on_budget in ("sources_only", "handoff"):
            chain = [on_budget, *routing.fallback]
        else:
            chain = list(routing.fallback)
        step = apply_fallback(ctx, chain, why)
        span.decide(step, reason=why, skipped=[{"model": m, "reason": r} for m, r in plan.skipped], cache=ctx.cache)

    def _estimate_prompt_tokens(self, ctx: RequestContext) -> int:
        chars = len(ctx.question) + sum(len(m.content) for m in ctx.history)
        if ctx.evidence is not None:
            chars += sum(len(h.passage.text) + len(h.passage.heading) for h in ctx.evidence.passages)
        return chars // 4 + PROMPT_OVERHEAD_TOKENS

    async def _serve_from_cache(self, ctx: RequestContext) -> bool:
        settings = self._contract.routing.cache
        if not (settings.exact or settings.semantic) or ctx.model is not None:
            return False
        hit = self._cache.lookup(
            cache_scope(ctx, ctx.app.pins.prompt or self._prompt_refs[ctx.app.name]),
            ctx.question,
            ctx.query_vector,
        )
        ctx.cache = "miss"
        if hit is None:
            return False
        hits = await asyncio.to_thread(self._readable_passages, ctx, hit.entry)
        if hits is None:
            return False
        ctx.cache = hit.kind
        ctx.mode = "answer"
        ctx.answer = hit.entry.answer
        ctx.answer_strategy = f"cache:{hit.entry.strategy}"
        ctx.prompt_ref = hit.entry.prompt
        ctx.citations = [citation_for(h, number) for (number, _), h in zip(hit.entry.citations, hits, strict=True)]
        ctx.route = RouteDecision(model=None, reason=f"{hit.kind} cache hit (similarity {hit.similarity:.3f})")
        ctx.current_span.decide(
            f"cache:{hit.kind}", reason=ctx.route.reason, cached_model=hit.entry.model, cache=ctx.cache
        )
        return True

    def _readable_passages(self, ctx: RequestContext, entry: CacheEntry) -> list[Hit] | None:
        """The cited passages as hits, or ``None`` if any is gone or not readable by the caller."""
        assert ctx.principal is not None
        snapshot = self._index.snapshot(ctx.index_version)
        out = []
        for _, chunk_id in entry.citations:
            passage = snapshot.passage_by_id(chunk_id)
            if passage is None or not set(passage.groups) & ctx.principal.acl_groups:
                return None
            out.append(
                Hit(
                    passage=passage,
                    fused_score=0.0,
                    fused_rank=0,
                    lexical_score=None,
                    lexical_rank=None,
                    dense_score=None,
                    dense_rank=None,
                )
            )
        return out
