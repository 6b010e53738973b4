"""Which models may serve a request, cheapest first, within the contract.

The plan starts at the cheapest tier the question's complexity allows (the
extractive tier for simple look-ups) and continues with larger tiers, then smaller
ones, as fallbacks. Each model is checked against its circuit breaker, the cost
envelope, the budgets and the latency target; every model left out is listed with
the reason, and the reasons go on the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from keel.contract import TIER_ORDER, App, Contract, ModelSpec
from keel.models.registry import ModelHealth, estimate_cost_usd
from keel.routing.complexity import Complexity

__all__ = ["RoutePlan", "plan_route"]

_MIN_TIER = {"lookup": 0, "standard": 1, "complex": 2}


@dataclass(kw_only=True)
class RoutePlan:
    """Models to try in order, those left out and why, and what made the choice."""

    candidates: list[ModelSpec] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""
    budget_blocked: bool = False


def plan_route(
    contract: Contract,
    app: App,
    *,
    complexity: Complexity | None,
    requested: str | None,
    health: Callable[[str], ModelHealth],
    budget_allows: Callable[[ModelSpec, float], str | None],
    prompt_tokens: int,
    regions: frozenset[str] | None = None,
) -> RoutePlan:
    """The plan for one request.

    ``budget_allows(spec, estimate)`` returns ``None`` when the estimate fits every
    budget, or the name of the budget it would break. ``complexity`` is ``None`` for
    apps without retrieval, which only language models can serve.
    """
    plan = RoutePlan()
    # A release (or the app) may route over its own list of models, cheapest first.
    order = [contract.model(n) for n in app.pins.order] if app.pins.order else contract.routing_order
    if not app.retrieval:
        order = [m for m in order if m.provider != "extractive"]
    if requested is not None:
        ordered = [contract.model(requested)]
        plan.reason = "requested by the caller"
    elif app.pins.model is not None:
        ordered = [contract.model(app.pins.model)]
        plan.reason = f"pinned by app {app.name}"
    else:
        floor = _MIN_TIER[complexity.level] if complexity is not None else 1
        start = next((i for i, m in enumerate(order) if TIER_ORDER[m.tier] >= floor), len(order) - 1)
        primary = order[start:]
        smaller = list(reversed(order[:start]))
        ordered = primary + (smaller if "next_model" in contract.routing.fallback else [])
        if "next_model" not in contract.routing.fallback:
            ordered = ordered[:1]
        plan.reason = (
            f"cheapest tier for {complexity.describe()}" if complexity is not None else "cheapest language model"
        )
    envelope = contract.cost.max_usd_per_request
    target = contract.slo.p95_latency_ms
    slow: list[ModelSpec] = []
    for spec in ordered:
        state = health(spec.name)
        estimate = estimate_cost_usd(spec, prompt_tokens, spec.max_output_tokens)
        if regions is not None and not spec.in_process and spec.region not in regions:
            where = spec.region or "an undeclared region"
            plan.skipped.append((spec.name, f"runs in {where}; this data may go only to {sorted(regions) or 'none'}"))
            continue
        if state.breaker == "open":
            plan.skipped.append((spec.name, "circuit breaker open"))
            continue
        if estimate > envelope:
            plan.skipped.append((spec.name, f"estimated ${estimate:.6f} exceeds the ${envelope:g} envelope"))
            continue
        blocked = budget_allows(spec, estimate)
        if blocked is not None:
            plan.skipped.append((spec.name, f"budget {blocked} would be exceeded"))
            plan.budget_blocked = True
            if contract.cost.on_budget_exceeded != "cheaper_model":
                break
            continue
        if state.p95_ms is not None and state.p95_ms > target:
            plan.skipped.append((spec.name, f"recent p95 {state.p95_ms:.0f} ms is over the {target} ms target"))
            slow.append(spec)
            continue
        plan.candidates.append(spec)
    if (
        not plan.candidates
        and slow
        and not (plan.budget_blocked and contract.cost.on_budget_exceeded != "cheaper_model")
    ):
        # Slow is better than nothing.
        plan.candidates.extend(slow)
    return plan
