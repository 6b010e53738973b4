"""keel release: what each app serves, shadow and canary candidates, promotion through the gate, rollback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from keel.cli.audit_cmd import parse_since
from keel.cli.common import console, handle_errors, open_project, print_json, run_async, settings_from

__all__ = ["command"]

ACTOR_HELP = "Who is acting, for the audit log. Default: the login name."


def _registry(ctx: click.Context) -> Any:
    from keel.audit import AuditLog
    from keel.policy.pii import redact
    from keel.releases import ReleaseRegistry

    project = open_project(ctx)
    project.ensure_dirs()
    db = project.open_database()
    audit = AuditLog(db, redact=redact)
    return project, db, audit, ReleaseRegistry(project.contract, db=db, audit=audit)


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "operator"


def _print_state(state: Any, registry: Any, app: Any) -> None:
    table = Table(title=f"App {state.app}")
    for column in ("role", "release", "model", "prompt", "index", ""):
        table.add_column(column)
    rows = [("current", state.current, "")]
    if state.candidate:
        rows.append((state.stage, state.candidate, f"{state.share:.0%}"))
    if state.history:
        rows.append(("previous", state.history[-1], "rollback restores it"))
    for role, name, note in rows:
        release = registry.release(app, name)
        table.add_row(
            role, release.name, release.model or "routed", release.prompt, str(release.index or "active"), note
        )
    console.print(table)


@click.group("release")
def command() -> None:
    """Releases: named model, prompt and index versions; shadow, canary, promote, rollback."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """The contract's releases and what each app serves now."""
    project, db, audit, registry = _registry(ctx)
    try:
        states = registry.states()
    finally:
        audit.close()
        db.close()
    contract = project.contract
    if as_json:
        print_json(
            {
                "releases": [r.model_dump() for r in contract.releases],
                "apps": [s.to_dict() for s in states],
            }
        )
        return
    releases = Table(title="Releases")
    for column in ("name", "model", "prompt", "index", "description"):
        releases.add_column(column)
    for r in contract.releases:
        releases.add_row(r.name, r.model or "routed", r.prompt, str(r.index or "active"), r.description)
    console.print(releases)
    for state in states:
        _print_state(state, registry, contract.app(state.app))


def _change(ctx: click.Context, app: str, change: Callable[[Any], Any]) -> None:
    """Apply ``change(registry)`` (one audited state change) and print the app's releases after it."""
    project, db, audit, registry = _registry(ctx)
    try:
        _print_state(change(registry), registry, project.contract.app(app))
    finally:
        audit.close()
        db.close()


def _start(ctx: click.Context, stage: str, candidate: str, app: str, share: float, actor: str | None) -> None:
    _change(ctx, app, lambda r: r.start(app, candidate, stage=stage, share=share, actor=_actor(actor)))


@command.command("shadow")
@click.argument("candidate")
@click.option("--app", default="default", show_default=True, help="The app whose traffic is copied.")
@click.option("--share", type=float, default=0.2, show_default=True, help="Share of requests copied (0-1].")
@click.option("--actor", default=None, help=ACTOR_HELP)
@click.pass_context
@handle_errors
def shadow(ctx: click.Context, candidate: str, app: str, share: float, actor: str | None) -> None:
    """Copy a share of APP's live requests to CANDIDATE, off the response path (answers never returned)."""
    _start(ctx, "shadow", candidate, app, share, actor)


@command.command("canary")
@click.argument("candidate")
@click.option("--app", default="default", show_default=True, help="The app whose users are split.")
@click.option("--share", type=float, default=0.1, show_default=True, help="Share of users served by it (0-1].")
@click.option("--actor", default=None, help=ACTOR_HELP)
@click.pass_context
@handle_errors
def canary(ctx: click.Context, candidate: str, app: str, share: float, actor: str | None) -> None:
    """Serve a sticky share of APP's users with CANDIDATE; `keel serve` rolls it back if it breaches the contract."""
    _start(ctx, "canary", candidate, app, share, actor)


@command.command("abort")
@click.option("--app", default="default", show_default=True)
@click.option("--reason", default="aborted by an operator", show_default=True)
@click.option("--actor", default=None, help=ACTOR_HELP)
@click.pass_context
@handle_errors
def abort(ctx: click.Context, app: str, reason: str, actor: str | None) -> None:
    """End APP's shadow or canary without promoting it."""
    _change(ctx, app, lambda r: r.stop(app, actor=_actor(actor), reason=reason))


@command.command("rollback")
@click.option("--app", default="default", show_default=True)
@click.option("--reason", default="", help="Why, for the audit log.")
@click.option("--actor", default=None, help=ACTOR_HELP)
@click.pass_context
@handle_errors
def rollback(ctx: click.Context, app: str, reason: str, actor: str | None) -> None:
    """Restore the release that served APP before the current one, in one step."""
    _change(ctx, app, lambda r: r.rollback(app, actor=_actor(actor), reason=reason))


@command.command("promote")
@click.argument("candidate")
@click.option("--app", default="default", show_default=True)
@click.option(
    "--suite",
    "suite_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Eval suite of the gate. Default: rollout.gate_suite, or evals/core.yaml.",
)
@click.option("--force", is_flag=True, help="Promote even if the gate finds regressions (needs --reason).")
@click.option("--reason", default=None, help="Why a forced promotion ships anyway (audited).")
@click.option("--actor", default=None, help=ACTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the gate's result as JSON.")
@click.pass_context
@handle_errors
def promote(
    ctx: click.Context,
    candidate: str,
    app: str,
    suite_path: Path | None,
    force: bool,
    reason: str | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Run the eval gate on CANDIDATE and the current release; promote CANDIDATE unless it regressed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from keel.releases.gate import promote_release
    from keel.runtime import Runtime

    if force and not reason:
        raise click.UsageError("--force needs --reason: say why the release ships despite the gate.")
    settings = settings_from(ctx)

    async def execute() -> Any:
        runtime = Runtime.from_settings(settings)
        try:
            await runtime.warm_up()
            with Progress(
                TextColumn("Gate"), BarColumn(), MofNCompleteColumn(), console=console, disable=as_json, transient=True
            ) as bar:
                task = bar.add_task("cases", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                return await promote_release(
                    runtime,
                    app=app,
                    candidate=candidate,
                    actor=_actor(actor),
                    suite_path=suite_path,
                    force_reason=reason if force else None,
                    concurrency=os.cpu_count() or 2,
                    progress=progress,
                )
        finally:
            await runtime.close()

    state, result = run_async(execute())
    if as_json:
        print_json({"state": state.to_dict(), "gate": result.to_dict()})
        return
    for line in result.regressions:
        console.print(f"[yellow]overridden:[/yellow] {line}")
    console.print(
        f"promoted {candidate!r} for app {app!r} (gate {'passed' if result.passed else 'forced'}); "
        f"`keel release rollback --app {app}` restores {state.history[-1] or 'pins'!r}"
    )


@command.command("shadow-report")
@click.option("--app", default="default", show_default=True)
@click.option("--candidate", default=None, help="Default: the app's shadow candidate.")
@click.option("--since", default=None, help="A duration ago (24h, 7d) or an ISO date. Default: everything.")
@click.option("--worst", type=int, default=10, show_default=True, help="How many disagreements to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def shadow_report_(
    ctx: click.Context, app: str, candidate: str | None, since: str | None, worst: int, as_json: bool
) -> None:
    """How the shadow candidate compares with what served the same requests; the biggest disagreements."""
    from keel.releases.shadow import shadow_report

    _project, db, audit, registry = _registry(ctx)
    try:
        name = candidate or registry.state(app).candidate
        if not name:
            raise click.UsageError(f"app {app!r} has no shadow candidate: name one with --candidate")
        report = shadow_report(db, app=app, candidate=name, since=parse_since(since) if since else None, worst=worst)
    finally:
        audit.close()
        db.close()
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"Shadow {report.candidate} on app {report.app}: {report.pairs} pairs, {report.errors} errors")
    table.add_column("measure")
    table.add_column("current", justify="right")
    table.add_column("candidate", justify="right")

    def fmt(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:.4g}{unit}"

    table.add_row("mode agreement", "", fmt(report.mode_agreement))
    table.add_row("answer similarity (mean / p10)", "", f"{fmt(report.similarity_mean)} / {fmt(report.similarity_p10)}")
    table.add_row("citation overlap (mean)", "", fmt(report.citation_overlap_mean))
    table.add_row("latency p50", fmt(report.latency_current_p50_ms, " ms"), fmt(report.latency_candidate_p50_ms, " ms"))
    table.add_row("latency p95", fmt(report.latency_current_p95_ms, " ms"), fmt(report.latency_candidate_p95_ms, " ms"))
    table.add_row(
        "cost per request", fmt(report.cost_current_mean_usd, " $"), fmt(report.cost_candidate_mean_usd, " $")
    )
    console.print(table)
    worst_table = Table(title="Biggest disagreements")
    for column in ("request", "modes", "similarity", "citations", "question"):
        worst_table.add_column(column)
    for pair in report.disagreements:
        worst_table.add_row(
            pair["request_id"],
            f"{pair['mode_current']} / {pair['mode_candidate']}",
            f"{pair['similarity']:.2f}",
            f"{pair['citation_overlap']:.2f}",
            pair["question"][:80],
        )
    console.print(worst_table)
