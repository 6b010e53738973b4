"""route: decide whether a model is needed and which one serves."""

from __future__ import annotations

from typing import ClassVar

from keel.contract import Contract
from keel.pipeline.context import RequestContext, RouteDecision

__all__ = ["RouteStage"]


class RouteStage:
    """No evidence -> ``no_answer`` without a model call; otherwise the app's pinned model or the default."""

    name: ClassVar[str] = "route"
    always_runs: ClassVar[bool] = False

    def __init__(self, contract: Contract) -> None:
        self._contract = contract

    async def run(self, ctx: RequestContext) -> None:
        """Set ``ctx.route`` (and ``ctx.mode`` when no model should be called)."""
        span = ctx.current_span
        if ctx.app.retrieval and (ctx.evidence is None or not ctx.evidence.sufficient):
            reason = ctx.evidence.reason if ctx.evidence else "no retrieval result"
            ctx.route = RouteDecision(model=None, reason=f"no evidence: {reason}")
            ctx.mode = "no_answer"
            span.decide("no_answer", reason=ctx.route.reason)
            return
        if ctx.model is not None:
            model, why = ctx.model, "requested by the caller"
        elif ctx.app.pins.model is not None:
            model, why = ctx.app.pins.model, f"pinned by app {ctx.app.name}"
        else:
            model, why = self._contract.default_model.name, "contract default model"
        spec = self._contract.model(model)
        ctx.model = model
        ctx.route = RouteDecision(model=model, reason=why)
        span.decide(model, reason=why, tier=spec.tier, model_version=spec.version)
