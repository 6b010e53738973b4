"""Cost forecast: spend to date and projected to the period's end, against budgets, with a fixed clock."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.contract import Budget
from keel.ops.costs import CostLedger
from keel.ops.forecast import CostForecast, Forecast, forecast_costs
from tests.support.database import database_at


def at(text: str) -> float:
    """``2026-03-15 12:00`` as a UTC timestamp."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


NOW = at("2026-03-15 12:00")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[CostLedger]:
    db = database_at(tmp_path / "k.db")
    yield CostLedger(db)
    db.close()


def spend(ledger: CostLedger, when: str, usd: float, *, app: str = "default", tenant: str = "acme") -> None:
    moment = at(when)
    ledger.record(
        request_id=f"r-{when}-{app}-{tenant}-{usd}",
        when=moment,
        tenant=tenant,
        app=app,
        model="m",
        prompt_tokens=10,
        completion_tokens=5,
        cost_usd=usd,
    )


def one(forecast: CostForecast, scope: str, name: str, period: str) -> Forecast:
    [found] = [f for f in forecast.items if (f.scope, f.name, f.period) == (scope, name, period)]
    return found


def steady_week(ledger: CostLedger) -> None:
    """$1 a day from 8 to 14 March, and $1 by noon on the 15th."""
    for day in range(8, 15):
        spend(ledger, f"2026-03-{day:02d} 10:00", 1.0)
    spend(ledger, "2026-03-15 09:00", 1.0)


def test_the_rate_blends_todays_pace_with_the_last_seven_days_by_the_part_of_today_gone(ledger: CostLedger) -> None:
    steady_week(ledger)
    forecast = forecast_costs(ledger, [], now=NOW)
    day = one(forecast, "app", "default", "day")
    # Today's pace: $1 in half a day = $2/day; the week's mean: $1/day; half a day gone.
    assert day.rate_usd_per_day == pytest.approx(0.5 * 2.0 + 0.5 * 1.0)
    assert day.spent_usd == pytest.approx(1.0)
    assert day.projected_usd == pytest.approx(1.0 + 1.5 * 0.5)
    month = one(forecast, "app", "default", "month")
    # 8 dollars this month; 16.5 days to 1 April 00:00.
    assert month.spent_usd == pytest.approx(8.0)
    assert month.projected_usd == pytest.approx(8.0 + 1.5 * 16.5)
    assert (day.period_key, month.period_key) == ("2026-03-15", "2026-03")
    tenant = one(forecast, "tenant", "acme", "month")
    assert tenant.projected_usd == pytest.approx(month.projected_usd)


def test_a_spike_yesterday_weighs_a_seventh_of_the_rate(ledger: CostLedger) -> None:
    for day in range(8, 14):
        spend(ledger, f"2026-03-{day:02d} 10:00", 1.0)
    spend(ledger, "2026-03-14 10:00", 15.0)
    forecast = forecast_costs(ledger, [], now=at("2026-03-15 00:00"))
    month = one(forecast, "app", "default", "month")
    assert month.rate_usd_per_day == pytest.approx((6 * 1.0 + 15.0) / 7)
    assert month.projected_usd == pytest.approx(21.0 + 3.0 * 17)


def test_a_new_tenant_is_not_diluted_by_days_before_it_first_spent(ledger: CostLedger) -> None:
    steady_week(ledger)
    spend(ledger, "2026-03-14 15:00", 3.0, tenant="newco")
    forecast = forecast_costs(ledger, [], now=NOW)
    # One complete day of history ($3), nothing yet today, half the day gone.
    assert one(forecast, "tenant", "newco", "day").rate_usd_per_day == pytest.approx(0.5 * 0.0 + 0.5 * 3.0)


def test_with_no_history_todays_pace_counts_the_day_as_at_least_an_hour_old(ledger: CostLedger) -> None:
    spend(ledger, "2026-03-15 00:05", 0.01)
    forecast = forecast_costs(ledger, [], now=at("2026-03-15 00:06"))
    day = one(forecast, "app", "default", "day")
    assert day.rate_usd_per_day == pytest.approx(0.01 * 24)
    assert day.projected_usd == pytest.approx(0.01 + 0.24 * (1 - 6 / 1440))


def test_spend_before_the_month_counts_in_the_rate_but_not_in_the_month_to_date(ledger: CostLedger) -> None:
    for day in ("02-23", "02-24", "02-25", "02-26", "02-27", "02-28", "03-01"):
        spend(ledger, f"2026-{day} 10:00", 2.0)
    forecast = forecast_costs(ledger, [], now=at("2026-03-02 00:00"))
    month = one(forecast, "app", "default", "month")
    assert month.spent_usd == pytest.approx(2.0)
    assert month.rate_usd_per_day == pytest.approx(2.0)
    assert month.projected_usd == pytest.approx(2.0 + 2.0 * 30)


@pytest.mark.parametrize(
    ("now", "days_left", "month_key"),
    [
        ("2028-02-28 00:00", 2.0, "2028-02"),  # a leap year's February ends on the 29th
        ("2027-02-28 00:00", 1.0, "2027-02"),
        ("2026-12-31 18:00", 0.25, "2026-12"),  # the year turns over
        ("2026-04-30 12:00", 0.5, "2026-04"),
    ],
)
def test_the_month_ends_at_the_first_instant_of_the_next(
    ledger: CostLedger, now: str, days_left: float, month_key: str
) -> None:
    moment = at(now)
    for back in range(1, 8):
        day = dt.datetime.fromtimestamp(moment, tz=dt.UTC) - dt.timedelta(days=back)
        spend(ledger, day.strftime("%Y-%m-%d 10:00"), 1.0)
    forecast = forecast_costs(ledger, [], now=moment)
    month = one(forecast, "app", "default", "month")
    assert month.period_key == month_key == forecast.month
    assert month.projected_usd == pytest.approx(month.spent_usd + month.rate_usd_per_day * days_left)


def test_a_budget_projected_to_be_exceeded_is_flagged_with_the_day_it_runs_out(ledger: CostLedger) -> None:
    steady_week(ledger)
    budgets = [
        Budget(scope="app", name="default", period="month", usd=30),
        Budget(scope="tenant", name="acme", period="month", usd=40),
    ]
    forecast = forecast_costs(ledger, budgets, now=NOW)
    app = one(forecast, "app", "default", "month")
    assert app.projected_usd == pytest.approx(32.75) and app.over_budget
    # $22 left at $1.5 a day: 14.67 days after noon on the 15th is 30 March, 04:00.
    assert app.runs_out_on == "2026-03-30"
    assert app.projected_use == pytest.approx(32.75 / 30)
    tenant = one(forecast, "tenant", "acme", "month")
    assert not tenant.over_budget and tenant.runs_out_on is None
    assert tenant.projected_use == pytest.approx(32.75 / 40)
    assert forecast.over_budget() == [app]


def test_a_day_budget_projected_over_runs_out_today(ledger: CostLedger) -> None:
    steady_week(ledger)
    budgets = [Budget(scope="app", name="default", period="day", usd=1.5)]
    day = one(forecast_costs(ledger, budgets, now=NOW), "app", "default", "day")
    assert day.over_budget and day.runs_out_on == "2026-03-15"
    looser = [Budget(scope="app", name="default", period="day", usd=2.0)]
    assert not one(forecast_costs(ledger, looser, now=NOW), "app", "default", "day").over_budget


def test_a_budget_already_spent_ran_out_on_the_day_spend_reached_it(ledger: CostLedger) -> None:
    steady_week(ledger)
    budgets = [Budget(scope="app", name="default", period="month", usd=5)]
    month = one(forecast_costs(ledger, budgets, now=NOW), "app", "default", "month")
    assert month.over_budget and month.runs_out_on == "2026-03-12"


def test_the_smallest_of_several_matching_budgets_applies(ledger: CostLedger) -> None:
    steady_week(ledger)
    budgets = [
        Budget(scope="app", name="default", period="month", usd=100),
        Budget(scope="app", name="default", period="month", usd=30),
    ]
    assert one(forecast_costs(ledger, budgets, now=NOW), "app", "default", "month").budget_usd == 30


def test_every_budgeted_name_is_forecast_and_names_with_no_recent_spend_are_not(ledger: CostLedger) -> None:
    spend(ledger, "2026-02-01 10:00", 5.0, app="retired", tenant="gone")
    steady_week(ledger)
    budgets = [Budget(scope="tenant", name="quiet", period="month", usd=10)]
    forecast = forecast_costs(ledger, budgets, now=NOW)
    assert sorted({(f.scope, f.name) for f in forecast.items}) == [
        ("app", "default"),
        ("tenant", "acme"),
        ("tenant", "quiet"),
    ]
    quiet = one(forecast, "tenant", "quiet", "month")
    assert (quiet.spent_usd, quiet.projected_usd, quiet.over_budget) == (0.0, 0.0, False)
    assert one(forecast, "tenant", "quiet", "day").budget_usd is None


def test_spend_is_split_by_app_and_by_tenant(ledger: CostLedger) -> None:
    spend(ledger, "2026-03-15 09:00", 1.0, app="hr", tenant="acme")
    spend(ledger, "2026-03-15 10:00", 2.0, app="it", tenant="acme")
    spend(ledger, "2026-03-15 11:00", 4.0, app="it", tenant="globex")
    forecast = forecast_costs(ledger, [], now=NOW)
    spent = {(f.scope, f.name): f.spent_usd for f in forecast.items if f.period == "day"}
    assert spent == {("app", "hr"): 1.0, ("app", "it"): 6.0, ("tenant", "acme"): 3.0, ("tenant", "globex"): 4.0}


def test_the_report_is_json(ledger: CostLedger) -> None:
    steady_week(ledger)
    forecast = forecast_costs(ledger, [Budget(scope="app", name="default", period="month", usd=30)], now=NOW)
    data = json.loads(json.dumps(forecast.to_dict()))
    assert (data["day"], data["month"], data["history_days"]) == ("2026-03-15", "2026-03", 7)
    month = next(i for i in data["items"] if i["scope"] == "app" and i["period"] == "month")
    assert month == {
        "scope": "app",
        "name": "default",
        "period": "month",
        "period_key": "2026-03",
        "spent_usd": 8.0,
        "rate_usd_per_day": 1.5,
        "projected_usd": 32.75,
        "budget_usd": 30.0,
        "projected_use": round(32.75 / 30, 6),
        "over_budget": True,
        "runs_out_on": "2026-03-30",
    }
