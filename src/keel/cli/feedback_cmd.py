"""keel feedback report: ratings, corrections and business outcomes per app, release and tag."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from keel.cli.audit_cmd import parse_since
from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]


@click.group("feedback")
def command() -> None:
    """Feedback and outcomes recorded through the API."""


@command.command("report")
@click.option("--since", help="Start: a duration ago (7d, 12h) or an ISO date. Default: everything.")
@click.option("--tenant", help="Only this tenant.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@handle_errors
def report(ctx: click.Context, since: str | None, tenant: str | None, as_json: bool) -> None:
    """Per app, release and tag: thumbs up and down, satisfaction, corrections, outcomes (count and total)."""
    from keel.ops.feedback import FeedbackStore
    from keel.policy.pii import redact
    from keel.tracing import TraceStore

    project = open_project(ctx)
    project.ensure_dirs()
    db = project.open_database()
    data = FeedbackStore(db, TraceStore(db), redact=redact).report(
        tenant=tenant, since=parse_since(since) if since else None
    )
    db.close()
    if as_json:
        print_json(data)
        return
    for dimension, title in (("apps", "app"), ("releases", "release"), ("tags", "tag")):
        if data[dimension] or dimension == "apps":
            console.print(_table(title, data[dimension]))


def _table(title: str, groups: dict[str, Any]) -> Table:
    table = Table(title=f"Feedback by {title}")
    for column in (title, "up", "down", "satisfaction", "corrections", "outcomes"):
        table.add_column(column)
    for name, entry in sorted(groups.items()):
        satisfaction = entry["satisfaction"]
        bar = "█" * round((satisfaction or 0) * 20) if satisfaction is not None else ""
        outcomes = ", ".join(f"{n}: {o['count']} ({o['total']:g})" for n, o in sorted(entry["outcomes"].items()))
        table.add_row(
            name or "-",
            str(entry["up"]),
            str(entry["down"]),
            f"{satisfaction:.0%} {bar}" if satisfaction is not None else "-",
            str(entry["corrections"]),
            outcomes or "-",
        )
    return table
