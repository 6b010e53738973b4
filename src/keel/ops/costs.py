"""The cost ledger: what every request cost, by app, tenant, model and day.

One row per request that called a model, keyed by the request id and written with
the request's running totals, so writing it again (after a second model call, or a
retried write) never charges twice. Budgets read their spend from here; ``keel
costs`` reports it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from keel.store import Database

__all__ = ["CostLedger", "DailySpend", "SpendRow", "period_key"]


def period_key(period: Literal["day", "month"], when: float) -> str:
    """``2026-11-23`` for a day, ``2026-11`` for a month (UTC)."""
    moment = dt.datetime.fromtimestamp(when, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


@dataclass(frozen=True, kw_only=True)
class SpendRow:
    """Spend of one group in a report."""

    day: str
    app: str
    tenant: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True, kw_only=True)
class DailySpend:
    """What one app spent for one tenant on one day."""

    day: str
    app: str
    tenant: str
    cost_usd: float


class CostLedger:
    """Spend in the project database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        *,
        request_id: str,
        when: float,
        tenant: str,
        app: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
    ) -> None:
        """Record a request's spend so far (its running totals; the same request id replaces them)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO spend (request_id, created_at, day, month, tenant, app, model, prompt_tokens,"
                " completion_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(request_id) DO UPDATE SET model = excluded.model,"
                " prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,"
                " cost_usd = excluded.cost_usd",
                (
                    request_id,
                    when,
                    period_key("day", when),
                    period_key("month", when),
                    tenant,
                    app,
                    model,
                    prompt_tokens,
                    completion_tokens,
                    cost_usd,
                ),
            )

    def spent(
        self, *, scope: Literal["app", "tenant"], name: str, period: Literal["day", "month"], when: float
    ) -> float:
        """Dollars spent by an app or tenant in the period containing ``when``."""
        column = "app" if scope == "app" else "tenant"
        period_column = "day" if period == "day" else "month"
        row = (
            self._db.connection()
            .execute(
                f"SELECT COALESCE(SUM(cost_usd), 0) FROM spend WHERE {column} = ? AND {period_column} = ?",
                (name, period_key(period, when)),
            )
            .fetchone()
        )
        return float(row[0])

    def daily(self, *, since_day: str) -> list[DailySpend]:
        """Spend per day, app and tenant from ``since_day`` (``YYYY-MM-DD``, UTC) on, oldest day first."""
        rows = self._db.connection().execute(
            "SELECT day, app, tenant, SUM(cost_usd) AS cost FROM spend WHERE month >= ? AND day >= ?"
            " GROUP BY day, app, tenant ORDER BY day",
            (since_day[:7], since_day),
        )
        return [DailySpend(day=r["day"], app=r["app"], tenant=r["tenant"], cost_usd=float(r["cost"])) for r in rows]

    def report(self, *, since_day: str | None = None, tenant: str | None = None) -> list[SpendRow]:
        """Spend grouped by day, app, tenant and model, newest day first."""
        clauses, args = [], []
        if since_day:
            clauses.append("day >= ?")
            args.append(since_day)
        if tenant:
            clauses.append("tenant = ?")
            args.append(tenant)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._db.connection().execute(
            "SELECT day, app, tenant, model, COUNT(*) AS requests, SUM(prompt_tokens) AS pt,"
            " SUM(completion_tokens) AS ct, SUM(cost_usd) AS cost FROM spend" + where + " GROUP BY day, app, tenant,"
            " model ORDER BY day DESC, cost DESC",
            args,
        )
        return [
            SpendRow(
                day=r["day"],
                app=r["app"],
                tenant=r["tenant"],
                model=r["model"],
                requests=int(r["requests"]),
                prompt_tokens=int(r["pt"]),
                completion_tokens=int(r["ct"]),
                cost_usd=float(r["cost"]),
            )
            for r in rows
        ]
