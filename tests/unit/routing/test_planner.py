"""The route plan: cheapest first, pins honoured, breaker, envelope, budget and latency respected."""

from __future__ import annotations

from keel.contract import ComplexitySettings, Contract, ModelSpec, parse_contract
from keel.models.registry import ModelHealth
from keel.routing.complexity import estimate_complexity
from keel.routing.planner import plan_route

CONTRACT = parse_contract(
    """
cost: {max_usd_per_request: 0.01}
slo: {p95_latency_ms: 2000}
models:
  - {name: big, provider: openai_compatible, base_url: "http://127.0.0.1:1/v1", tier: large,
     price: {input_per_mtok: 2.0, output_per_mtok: 6.0}}
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: small, tier: small, price: {input_per_mtok: 0.1, output_per_mtok: 0.2}}
apps:
  - {name: default}
  - {name: pinned, pins: {model: big}}
  - {name: chat, retrieval: false}
"""
)


def healthy(name: str) -> ModelHealth:
    return ModelHealth(breaker="closed", in_flight=0, waiting=0, p95_ms=None)


def plan(
    contract: Contract = CONTRACT,
    *,
    app: str = "default",
    question: str = "How many days?",
    sources: int = 1,
    health=healthy,
    budget=lambda spec, est: None,
    requested: str | None = None,
):  # type: ignore[no-untyped-def]
    complexity = estimate_complexity(question, sources, ComplexitySettings()) if contract.app(app).retrieval else None
    return plan_route(
        contract,
        contract.app(app),
        complexity=complexity,
        requested=requested,
        health=health,
        budget_allows=budget,
        prompt_tokens=500,
    )


def names(p) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.name for m in p.candidates]


def test_lookups_start_at_the_extractive_tier_and_fall_back_upwards() -> None:
    assert names(plan()) == ["extractive", "small", "big"]


def test_standard_questions_start_at_a_model_and_fall_back_to_cheaper_ones_last() -> None:
    assert names(plan(question="Why do we rotate keys every month?")) == ["small", "big", "extractive"]


def test_pins_and_requests_are_honoured_alone() -> None:
    assert names(plan(app="pinned")) == ["big"]
    assert names(plan(requested="small")) == ["small"]


def test_plain_apps_never_use_the_extractive_tier() -> None:
    assert names(plan(app="chat")) == ["small", "big"]


def test_open_breaker_skips_the_model_with_the_reason() -> None:
    def health(name: str) -> ModelHealth:
        return ModelHealth(breaker="open" if name == "small" else "closed", in_flight=0, waiting=0, p95_ms=None)

    p = plan(question="Why do we rotate keys every month?", health=health)
    assert names(p) == ["big", "extractive"]
    assert ("small", "circuit breaker open") in p.skipped


def test_models_over_the_cost_envelope_are_skipped() -> None:
    cheap = parse_contract(
        CONTRACT.model_dump_json().replace('"max_usd_per_request":0.01', '"max_usd_per_request":0.0005')
    )
    p = plan(cheap, question="Why do we rotate keys every month?")
    assert "big" not in names(p)
    assert any(m == "big" and "envelope" in r for m, r in p.skipped)


def test_budget_exhaustion_moves_to_cheaper_models_or_stops() -> None:
    def budget(spec: ModelSpec, estimate: float) -> str | None:
        return "app:default:day" if estimate > 0 else None

    p = plan(question="Why do we rotate keys every month?", budget=budget)
    assert names(p) == ["extractive"] and p.budget_blocked
    strict = parse_contract(CONTRACT.model_dump_json().replace('"cheaper_model"', '"sources_only"'))
    assert names(plan(strict, question="Why do we rotate keys every month?", budget=budget)) == []


def test_slow_models_are_skipped_unless_nothing_else_is_left() -> None:
    def slow(name: str) -> ModelHealth:
        return ModelHealth(breaker="closed", in_flight=0, waiting=0, p95_ms=5000 if name != "extractive" else None)

    assert names(plan(question="Why do we rotate keys every month?", health=slow)) == ["extractive"]
    assert names(plan(app="chat", health=slow)) == ["small", "big"]


def test_an_app_or_release_routes_over_its_own_model_order() -> None:
    contract = parse_contract(
        """
cost: {max_usd_per_request: 0.01}
models:
  - {name: big, provider: openai_compatible, base_url: "http://127.0.0.1:1/v1", tier: large,
     price: {input_per_mtok: 2.0, output_per_mtok: 6.0}}
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: small, tier: small, price: {input_per_mtok: 0.1, output_per_mtok: 0.2}}
apps:
  - {name: default, pins: {order: [extractive, big]}}
"""
    )
    assert names(plan(contract)) == ["extractive", "big"], "small is not in this app's routing"
