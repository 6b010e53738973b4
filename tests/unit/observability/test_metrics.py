"""Metrics read at scrape time: the cost forecast gauge, bounded to the contract's names and cached."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keel.contract import App, Budget, Contract, CostSettings, ModelSpec
from keel.models.registry import ModelRegistry
from keel.observability.metrics import FORECAST_REFRESH_S, ServiceMetrics
from keel.ops.costs import CostLedger
from keel.routing.budgets import BudgetGuard
from keel.store import Database
from tests.support.database import database_at

NOW = dt.datetime(2026, 3, 15, tzinfo=dt.UTC).timestamp()  # midnight: the rate is the week's mean alone
CONTRACT = Contract(
    models=[ModelSpec(name="extractive", provider="extractive", tier="extractive")],
    apps=[App(name="default"), App(name="hr")],
    cost=CostSettings(budgets=[Budget(scope="tenant", name="acme", period="month", usd=100)]),
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = database_at(tmp_path / "k.db")
    yield database
    database.close()


def spend(db: Database, rid: str, usd: float, *, app: str, tenant: str, days_ago: int = 1) -> None:
    CostLedger(db).record(
        request_id=rid,
        when=NOW - days_ago * 86400 + 3600,
        tenant=tenant,
        app=app,
        model="extractive",
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=usd,
    )


def forecast_samples(metrics: ServiceMetrics) -> dict[tuple[str, str, str], float]:
    text = metrics.exposition().decode()
    return {
        (s.labels["scope"], s.labels["name"], s.labels["period"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "keel_cost_forecast_usd"
        for s in family.samples
    }


def service_metrics(db: Database, clock: Clock, tmp_path: Path) -> ServiceMetrics:
    ledger = CostLedger(db)
    return ServiceMetrics(
        CONTRACT,
        models=ModelRegistry(CONTRACT, project_root=tmp_path),
        budgets=BudgetGuard(CONTRACT.cost.budgets, ledger),
        db=db,
        clock=clock,
    )


def test_forecast_names_only_contract_apps_and_budgeted_tenants_and_sums_the_rest_as_other(
    db: Database, tmp_path: Path
) -> None:
    spend(db, "r1", 7.0, app="default", tenant="acme")
    spend(db, "r2", 14.0, app="hr", tenant="customer-42")
    spend(db, "r3", 7.0, app="unlisted-app", tenant="customer-43")
    samples = forecast_samples(service_metrics(db, Clock(), tmp_path))
    # One complete day of history each: the rate is that day's spend; 17 days are left in March.
    assert samples == {
        ("app", "default", "day"): pytest.approx(7.0),
        ("app", "default", "month"): pytest.approx(7.0 * 18),
        ("app", "hr", "day"): pytest.approx(14.0),
        ("app", "hr", "month"): pytest.approx(14.0 * 18),
        ("app", "other", "day"): pytest.approx(7.0),
        ("app", "other", "month"): pytest.approx(7.0 * 18),
        ("tenant", "acme", "day"): pytest.approx(7.0),
        ("tenant", "acme", "month"): pytest.approx(7.0 * 18),
        ("tenant", "other", "day"): pytest.approx(21.0),
        ("tenant", "other", "month"): pytest.approx(21.0 * 18),
    }


def test_forecast_is_read_again_only_after_its_refresh_interval(db: Database, tmp_path: Path) -> None:
    clock = Clock()
    metrics = service_metrics(db, clock, tmp_path)
    assert forecast_samples(metrics) == {("tenant", "acme", "day"): 0.0, ("tenant", "acme", "month"): 0.0}
    spend(db, "r1", 7.0, app="default", tenant="acme")
    clock.now += FORECAST_REFRESH_S / 2
    assert forecast_samples(metrics)[("tenant", "acme", "month")] == 0.0
    clock.now += FORECAST_REFRESH_S
    assert forecast_samples(metrics)[("tenant", "acme", "month")] > 0.0
