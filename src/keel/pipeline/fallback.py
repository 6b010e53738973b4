"""What serves a request when no model can: the contract's fallback chain after the models."""

from __future__ import annotations

from keel.contract import FallbackStep
from keel.errors import ModelUnavailable
from keel.pipeline.context import RequestContext
from keel.retrieval.search import Hit

__all__ = ["apply_fallback"]


def apply_fallback(ctx: RequestContext, chain: list[FallbackStep], why: str) -> str:
    """Set ``ctx.mode`` to the first applicable non-model step of ``chain``; returns it.

    ``sources_only`` and ``clarify`` need retrieved evidence; ``handoff`` always
    applies. With no applicable step the request fails with ``model_unavailable``.
    """
    has_evidence = ctx.app.retrieval and ctx.evidence is not None and ctx.evidence.sufficient
    for step in chain:
        if step == "next_model":
            continue
        if step in ("sources_only", "clarify") and not has_evidence:
            continue
        if step == "clarify" and ctx.evidence is not None:
            docs = {h.passage.doc_id for h in ctx.evidence.passages}
            if len(docs) < 2:
                continue
            ctx.clarify_topics = _one_per_document(ctx)
        ctx.mode = step
        return step
    raise ModelUnavailable(f"No model could answer ({why}), and the contract's fallback chain has no other step.")


def _one_per_document(ctx: RequestContext) -> list[Hit]:
    assert ctx.evidence is not None
    seen: set[str] = set()
    out = []
    for hit in ctx.evidence.passages:
        if hit.passage.doc_id not in seen:
            seen.add(hit.passage.doc_id)
            out.append(hit)
    return out
