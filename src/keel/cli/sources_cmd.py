"""keel sources: each source's freshness, for people and for cron or monitoring."""

from __future__ import annotations

import sys
import time

import click
from rich.markup import escape
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]

_STATE_STYLE = {"fresh": "green", "stale": "yellow", "failing": "red", "never": "yellow"}


@click.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print the freshness of every source as JSON.")
@click.pass_context
@handle_errors
def command(ctx: click.Context, as_json: bool) -> None:
    """Show each source's owner, refresh interval, last success, state, documents and last error.

    A source is stale when its last successful ingest is older than its refresh
    interval (or it never had one), failing when its last ingest failed. Exits 1 when
    any source is stale or failing, so a cron job or a monitor can alert its owner.
    """
    from keel.durations import format_age
    from keel.ingest.freshness import source_freshness

    project = open_project(ctx)
    now = time.time()
    db = project.open_database()
    try:
        sources = source_freshness(project.contract, db, now=now)
    finally:
        db.close()
    attention = [f for f in sources if f.stale or f.failing]
    if as_json:
        print_json(
            {
                "checked_at": now,
                "sources": [f.to_dict() for f in sources],
                "stale": [f.source for f in sources if f.stale],
                "failing": [f.source for f in sources if f.failing],
            }
        )
    elif not sources:
        console.print("The contract declares no sources (see docs/contract.md, `sources`).")
    else:
        table = Table(title="Sources")
        for column in ("source", "owner", "refresh", "last success", "state", "documents", "last error"):
            table.add_column(column, justify="right" if column == "documents" else "left")
        for f in sources:
            success = "never" if f.age_s is None else f"{format_age(f.age_s)} ago"
            error = escape(f.last_error or "")
            if error and not f.failing and f.last_error_at is not None:
                error = f"[dim]{format_age(now - f.last_error_at)} ago: {error}[/dim]"
            table.add_row(
                f.source,
                escape(f.owner) or "[dim]none[/dim]",
                f.refresh,
                success,
                f"[{_STATE_STYLE[f.state]}]{f.state}[/{_STATE_STYLE[f.state]}]",
                str(f.documents),
                error,
            )
        console.print(table)
        for f in attention:
            who = f"tell {escape(f.owner)}" if f.owner else "no owner to tell: set one in the contract"
            console.print(f"[{_STATE_STYLE[f.state]}]{f.source} is {f.state}[/]: {who}")
    if attention:
        sys.exit(1)
