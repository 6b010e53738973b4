"""keel costs: spend by day, app, tenant and model, and where each budget stands."""

from __future__ import annotations

import datetime as dt

import click
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]


@click.command("costs")
@click.option("--days", type=int, default=30, show_default=True, help="How many days back to report.")
@click.option("--tenant", default=None, help="Only this tenant.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def command(ctx: click.Context, days: int, tenant: str | None, as_json: bool) -> None:
    """Spend by day, app, tenant and model, with every budget's spend and remainder."""
    from keel.ops.costs import CostLedger
    from keel.routing.budgets import BudgetGuard
    from keel.store import Database

    project = open_project(ctx)
    db = Database(project.database_path)
    ledger = CostLedger(db)
    since = (dt.datetime.now(tz=dt.UTC) - dt.timedelta(days=days - 1)).strftime("%Y-%m-%d")
    rows = ledger.report(since_day=since, tenant=tenant)
    budgets = BudgetGuard(project.contract.cost.budgets, ledger).all_status()
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
