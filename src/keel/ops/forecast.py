"""Cost forecast: spend to date and projected to the period's end, per app and tenant, against budgets.

Every app and tenant with spend this month or in the last 7 days, and every budgeted
one, gets a forecast for the current day and the current month (UTC). Each rests on one
daily rate::

    rate = f * today_rate + (1 - f) * recent_mean

* ``f`` is the part of today that has passed (0 at midnight, 1 at the end of the day),
  so today's own pace counts for more as the day goes on;
* ``today_rate`` is today's spend so far over ``f``, the day counted as at least an hour
  old, so one request just after midnight does not project as a day full of them;
* ``recent_mean`` is the mean daily spend of the last 7 complete days, so a spike
  yesterday moves it by a seventh, not by a thirtieth. When the app or tenant first
  spent more recently than that (as far as this month and the last 7 days show), only
  the complete days since then count, so a new tenant is not diluted by days before it
  existed. With no complete day yet, the rate is ``today_rate`` alone.

The projection at the period's end is the period's spend so far plus ``rate`` times the
days left in it: the rest of today for a day, until the first instant of next month for
a month. Spend from before the period counts in the rate, never in the spend so far.

A budget (the contract's, same scope, name and period; the smallest if there are
several) is projected over when the projection exceeds it. It runs out on the day the
spend so far plus the rate reaches it, or, when spend has already gone past it, on the
day it did.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from keel.contract import Budget
from keel.ops.costs import CostLedger, period_key

__all__ = ["HISTORY_DAYS", "CostForecast", "Forecast", "forecast_costs"]

HISTORY_DAYS = 7
"""Complete days whose mean daily spend carries the rate."""

DAY_S = 86400.0
MIN_ELAPSED = 1.0 / 24.0
"""Today counts as at least an hour old when its pace is worked out."""

Scope = Literal["app", "tenant"]
Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")


@dataclass(frozen=True, kw_only=True)
class Forecast:
    """One app's or tenant's spend in the current day or month, projected to the period's end."""

    scope: Scope
    name: str
    period: Period
    period_key: str
    spent_usd: float
    rate_usd_per_day: float
    projected_usd: float
    budget_usd: float | None
    runs_out_on: str | None
    """The UTC day the budget is projected to run out (or ran out); ``None`` when it is not projected over."""

    @property
    def label(self) -> str:
        """``app:default:day``, as budgets are named."""
        return f"{self.scope}:{self.name}:{self.period}"

    @property
    def projected_use(self) -> float | None:
        """The projection as a share of the budget (1.0 for a zero budget); ``None`` without a budget."""
        if self.budget_usd is None:
            return None
        return self.projected_usd / self.budget_usd if self.budget_usd > 0 else 1.0

    @property
    def over_budget(self) -> bool:
        """True when the projection at the period's end exceeds the budget."""
        return self.budget_usd is not None and self.projected_usd > self.budget_usd

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        use = self.projected_use
        return {
            "scope": self.scope,
            "name": self.name,
            "period": self.period,
            "period_key": self.period_key,
            "spent_usd": round(self.spent_usd, 8),
            "rate_usd_per_day": round(self.rate_usd_per_day, 8),
            "projected_usd": round(self.projected_usd, 8),
            "budget_usd": self.budget_usd,
            "projected_use": None if use is None else round(use, 6),
            "over_budget": self.over_budget,
            "runs_out_on": self.runs_out_on,
        }


@dataclass(frozen=True, kw_only=True)
class CostForecast:
    """Every forecast at one moment."""

    at: float
    day: str
    month: str
    history_days: int
    items: tuple[Forecast, ...]

    def over_budget(self) -> list[Forecast]:
        """The forecasts projected over their budget."""
        return [f for f in self.items if f.over_budget]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "at": self.at,
            "day": self.day,
            "month": self.month,
            "history_days": self.history_days,
            "items": [f.to_dict() for f in self.items],
        }


def _daily_rate(days: dict[dt.date, float], *, today: dt.date, elapsed: float, history_days: int) -> float:
    """Dollars a day: today's pace blended with the recent mean (see the module's docstring)."""
    today_rate = days.get(today, 0.0) / max(elapsed, MIN_ELAPSED)
    first = min(days, default=today)
    complete = [d for d in (today - dt.timedelta(days=i) for i in range(1, history_days + 1)) if d >= first]
    if not complete:
        return today_rate
    recent_mean = sum(days.get(d, 0.0) for d in complete) / len(complete)
    return elapsed * today_rate + (1.0 - elapsed) * recent_mean


def _runs_out_on(
    days: dict[dt.date, float], *, start: dt.date, spent: float, budget: float, rate: float, now: float, end: float
) -> str:
    """The day a budget that is projected over runs out (or ran out)."""
    if spent > budget:
        cumulative = 0.0
        for day in sorted(d for d in days if d >= start):
            cumulative += days[day]
            if cumulative >= budget:
                return day.isoformat()
    at = now if rate <= 0 else min(now + (budget - spent) / rate * DAY_S, end - 1.0)
    return period_key("day", max(at, now))


def forecast_costs(
    ledger: CostLedger, budgets: Iterable[Budget], *, now: float, history_days: int = HISTORY_DAYS
) -> CostForecast:
    """Forecast every app and tenant with recent spend, and every budgeted one, at ``now`` (seconds, UTC).

    One query reads the ledger's daily totals since the earlier of the month's start and
    ``history_days`` days ago.
    """
    moment = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    today = moment.date()
    day_start = dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)
    elapsed = (moment - day_start).total_seconds() / DAY_S
    month_start = today.replace(day=1)
    next_month = (month_start + dt.timedelta(days=32)).replace(day=1)
    ends = {
        "day": (day_start + dt.timedelta(days=1)).timestamp(),
        "month": dt.datetime(next_month.year, next_month.month, 1, tzinfo=dt.UTC).timestamp(),
    }
    starts = {"day": today, "month": month_start}
    since = min(month_start, today - dt.timedelta(days=history_days))

    spend: dict[tuple[Scope, str], dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    for row in ledger.daily(since_day=since.isoformat()):
        day = dt.date.fromisoformat(row.day)
        if day <= today:
            spend[("app", row.app)][day] += row.cost_usd
            spend[("tenant", row.tenant)][day] += row.cost_usd
    limits: dict[tuple[Scope, str, Period], float] = {}
    for b in budgets:
        key = (b.scope, b.name, b.period)
        limits[key] = min(b.usd, limits.get(key, b.usd))

    names = sorted({*spend, *((scope, name) for scope, name, _ in limits)}, key=lambda k: (k[0] != "app", k[1]))
    items: list[Forecast] = []
    for scope, name in names:
        days = dict(spend.get((scope, name), {}))
        rate = _daily_rate(days, today=today, elapsed=elapsed, history_days=history_days)
        for period in PERIODS:
            start = starts[period]
            spent = float(sum(days[d] for d in sorted(days) if d >= start))
            projected = spent + rate * max(0.0, ends[period] - now) / DAY_S
            budget = limits.get((scope, name, period))
            runs_out = None
            if budget is not None and projected > budget:
                runs_out = _runs_out_on(
                    days, start=start, spent=spent, budget=budget, rate=rate, now=now, end=ends[period]
                )
            items.append(
                Forecast(
                    scope=scope,
                    name=name,
                    period=period,
                    period_key=period_key(period, now),
                    spent_usd=spent,
                    rate_usd_per_day=rate,
                    projected_usd=projected,
                    budget_usd=budget,
                    runs_out_on=runs_out,
                )
            )
    return CostForecast(
        at=now,
        day=period_key("day", now),
        month=period_key("month", now),
        history_days=history_days,
        items=tuple(items),
    )
