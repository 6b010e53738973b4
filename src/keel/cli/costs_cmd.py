"""keel costs: spend by day, app, tenant and model, where each budget stands, and the forecast to period end."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

import click
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

if TYPE_CHECKING:
    from keel.ops.forecast import CostForecast

__all__ = ["command"]


@click.command("costs")
@click.option("--days", type=int, default=30, show_default=True, help="How many days back to report.")
@click.option("--tenant", default=None, help="Only this tenant.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def command(ctx: click.Context, days: int, tenant: str | None, as_json: bool) -> None:
    """Spend by day, app, tenant and model, every budget's spend and remainder, and spend projected to period end."""
    from keel.ops.costs import CostLedger
    from keel.ops.forecast import forecast_costs
    from keel.routing.budgets import BudgetGuard

    project = open_project(ctx)
    db = project.open_database()
    ledger = CostLedger(db)
    since = (dt.datetime.now(tz=dt.UTC) - dt.timedelta(days=days - 1)).strftime("%Y-%m-%d")
    rows = ledger.report(since_day=since, tenant=tenant)
    budgets = BudgetGuard(project.contract.cost.budgets, ledger).all_status()
    forecast = forecast_costs(ledger, project.contract.cost.budgets, now=time.time())
    db.close()
    if as_json:
        print_json(
            {
                "since": since,
                "rows": [r.__dict__ for r in rows],
                "budgets": [
                    {
                        "budget": s.label,
                        "usd": s.budget.usd,
                        "spent_usd": round(s.spent_usd, 8),
                        "remaining_usd": round(s.remaining_usd, 8),
                        "exceeded": s.spent_usd >= s.budget.usd,
                    }
                    for s in budgets
                ],
                "forecast": forecast.to_dict(),
            }
        )
        return
    table = Table(title=f"Spend since {since} (UTC)")
    for column in ("day", "app", "tenant", "model", "requests", "tokens in", "tokens out", "USD"):
        table.add_column(
            column, justify="right" if column in ("requests", "tokens in", "tokens out", "USD") else "left"
        )
    total = 0.0
    for r in rows:
        total += r.cost_usd
        table.add_row(
            r.day,
            r.app,
            r.tenant,
            r.model,
            str(r.requests),
            str(r.prompt_tokens),
            str(r.completion_tokens),
            f"{r.cost_usd:.6f}",
        )
    console.print(table)
    console.print(f"total: ${total:.6f}")
    if budgets:
        btable = Table(title="Budgets (current period)")
        for column in ("budget", "limit USD", "spent USD", "remaining USD", "used", ""):
            btable.add_column(column)
        for s in budgets:
            used = s.spent_usd / s.budget.usd if s.budget.usd else 1.0
            bar = "█" * min(20, round(20 * used))
            flag = "[red]exceeded[/red]" if s.spent_usd >= s.budget.usd else ""
            btable.add_row(
                s.label, f"{s.budget.usd:g}", f"{s.spent_usd:.6f}", f"{s.remaining_usd:.6f}", f"{used:.0%} {bar}", flag
            )
        console.print(btable)
    if forecast.items:
        console.print(_forecast_table(forecast))


def _forecast_table(forecast: CostForecast) -> Table:
    """Spend to date and projected at the end of the current day and month, against budgets."""
    table = Table(title=f"Forecast to the end of {forecast.day} and of {forecast.month} (UTC)")
    for column in (
        "scope",
        "name",
        "period",
        "spent USD",
        "projected USD",
        "budget USD",
        "projected use",
        "",
        "runs out",
    ):
        table.add_column(column, justify="right" if column.endswith("USD") else "left")
    for f in forecast.items:
        use = f.projected_use
        table.add_row(
            f.scope,
            f.name,
            f.period,
            f"{f.spent_usd:.6f}",
            f"{f.projected_usd:.6f}",
            "-" if f.budget_usd is None else f"{f.budget_usd:g}",
            "-" if use is None else f"{use:.0%} " + "█" * min(10, round(10 * use)),
            "[red]over budget[/red]" if f.over_budget else "",
            f.runs_out_on or "",
        )
    return table
