"""keel traces: list recent requests and show one request's stages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]


def _store(ctx: click.Context):  # type: ignore[no-untyped-def]
    from keel.tracing import TraceStore

    project = open_project(ctx)
    return TraceStore(project.open_database())


@click.group("traces")
def command() -> None:
    """Inspect request traces (operator view: every principal)."""


@command.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--principal", default=None, help="Only this principal's requests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
@handle_errors
def list_traces(ctx: click.Context, limit: int, principal: str | None, as_json: bool) -> None:
    """Recent requests, newest first."""
    records = _store(ctx).recent(principal_id=principal, limit=limit)
    if as_json:
        for r in records:
            click.echo(json.dumps(r.summary()))
        return
    table = Table()
    table.add_column("request id", no_wrap=True)
    for column in ("when (UTC)", "principal", "app", "endpoint", "mode", "status", "ms"):
        table.add_column(column)
    for r in records:
        when = dt.datetime.fromtimestamp(r.created_at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            r.request_id, when, r.principal_id, r.app, r.endpoint, r.mode, str(r.status), f"{r.latency_ms:.0f}"
        )
    console.print(table)


@command.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole trace as JSON.")
@click.pass_context
@handle_errors
def show(ctx: click.Context, request_id: str, as_json: bool) -> None:
    """Every stage of one request with its timing and decision."""
    record = _store(ctx).get(request_id)
    if record is None:
        raise click.ClickException(f"no trace {request_id!r}")
    if as_json:
        print_json({**record.summary(), **record.data})
        return
    response = record.data.get("response", {})
    console.print(
        f"[bold]{record.request_id}[/bold] {record.principal_id} app={record.app} mode={record.mode} "
        f"status={record.status} {record.latency_ms:.0f} ms model={response.get('model')} "
        f"prompt={response.get('prompt')} "
        f"index=v{response.get('index_version')}",
        highlight=False,
    )
    table = Table()
    for column in ("stage", "start ms", "ms", "status", "decision"):
        table.add_column(column)
    total = max(record.latency_ms, 1.0)
    for span in record.data.get("spans", []):
        bar = "█" * max(1, round(30 * span["duration_ms"] / total)) if span["status"] != "skipped" else ""
        table.add_row(
            span["name"],
            f"{span['start_ms']:.1f}",
            f"{span['duration_ms']:.1f} {bar}",
            span["status"],
            str(span["decision"])[:80],
        )
    console.print(table)
    spans = record.data.get("spans", [])
    hits: list[dict[str, Any]] = next((s["attributes"].get("hits", []) for s in spans if s["name"] == "retrieve"), [])
    if hits:
        chunks = Table(title="Retrieved passages")
        for column in ("#", "title", "lexical", "dense", "fused", "selected"):
            chunks.add_column(column)
        for h in hits:
            chunks.add_row(
                str(h["fused_rank"]),
                h["title"],
                _fmt(h["lexical_score"]),
                _fmt(h["dense_score"]),
                _fmt(h["fused_score"]),
                "yes" if h["selected"] else "",
            )
        console.print(chunks)


def _fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"
