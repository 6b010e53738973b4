"""keel drift: has recent traffic moved away from the reference window?"""

from __future__ import annotations

import sys

import click
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]


@click.command("drift")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-topics", is_flag=True, help="Skip question topics (no embedding model is loaded).")
@click.pass_context
@handle_errors
def command(ctx: click.Context, as_json: bool, no_topics: bool) -> None:
    """Compare the current window with the reference one; a drift is audited, acted on (drift.on_drift), exits 1."""
    from keel.audit import AuditLog
    from keel.ops.drift import compute_drift
    from keel.ops.drift_actions import DriftActions, act_on_drift
    from keel.policy.pii import redact
    from keel.retrieval.embedder import MiniLMEmbedder

    project = open_project(ctx)
    project.ensure_dirs()
    settings = project.contract.drift
    embedder = None
    if not no_topics:
        embedder = MiniLMEmbedder(cache_dir=project.cache_dir)
        embedder.warm_up()
    db = project.open_database()
    actions: DriftActions | None = None
    try:
        report = compute_drift(db, settings, embedder=embedder)
        if report.drifted:
            audit = AuditLog(db, redact=redact)
            try:
                actions = act_on_drift(report, project.contract, root=project.root, db=db, audit=audit, redact=redact)
            finally:
                audit.close()
    finally:
        db.close()
    if as_json:
        print_json({**report.to_dict(), "actions": None if actions is None else actions.to_dict()})
    else:
        table = Table(
            title=f"Drift: last {settings.current_days:g} day(s) ({report.current_requests} requests) against the "
            f"{settings.reference_days:g} days before ({report.reference_requests})"
        )
        for column in ("dimension", "KL divergence", "", "state"):
            table.add_column(column)
        for name, value in report.divergence.items():
            width = min(20, round(value / settings.threshold * 10))
            state = "[red]drifted[/red]" if name in report.drifted else "[green]stable[/green]"
            table.add_row(name, f"{value:.4f}", "█" * width, state if report.enough_data else "too little traffic")
        console.print(table)
        console.print(f"threshold {settings.threshold:g} (the bar's midpoint)")
        if actions is not None:
            if actions.manifest is not None:
                console.print(
                    f"fine-tune export ({actions.manifest.examples} example(s)) written to {actions.export_dir}"
                )
            for problem in actions.problems:
                console.print(f"[red]not done[/red]: {problem}")
    if report.drifted:
        sys.exit(1)
