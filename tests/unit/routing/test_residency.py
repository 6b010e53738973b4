"""Data residency: a tenant's data goes only to models in its regions; in-process models are always allowed."""

from __future__ import annotations

from keel.contract import parse_contract
from keel.models.registry import ModelHealth
from keel.routing.planner import plan_route

CONTRACT = """
models:
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: local-small, provider: local, tier: small}
  - {name: us-large, provider: openai_compatible, base_url: "http://127.0.0.1:9/v1", tier: large, region: us}
  - {name: eu-large, provider: openai_compatible, base_url: "http://127.0.0.1:9/v1", tier: large, region: eu}
routing: {fallback: [next_model, sources_only]}
tenants:
  - {name: acme-eu, regions: [eu]}
"""


def _plan(regions: frozenset[str] | None) -> list[str]:
    contract = parse_contract(CONTRACT)
    plan = plan_route(
        contract,
        contract.default_app,
        complexity=None,
        requested=None,
        health=lambda name: ModelHealth(breaker="closed", in_flight=0, waiting=0, p95_ms=None),
        budget_allows=lambda spec, estimate: None,
        prompt_tokens=100,
        regions=regions,
    )
    return [m.name for m in plan.candidates]


def test_models_outside_the_tenants_regions_are_skipped() -> None:
    contract = parse_contract(CONTRACT)
    regions = contract.tenant_regions("acme-eu")
    assert regions == ["eu"]
    names = _plan(frozenset(regions))
    assert "us-large" not in names and "eu-large" in names and "local-small" in names


def test_no_rule_means_every_region() -> None:
    assert {"us-large", "eu-large"} <= set(_plan(None))


def test_an_empty_region_set_leaves_only_in_process_models() -> None:
    assert set(_plan(frozenset())) == {"extractive", "local-small"}
