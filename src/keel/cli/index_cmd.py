"""keel index: list versions, activate one or roll back (audited), diff two, report on quality."""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]

_BAR = 30
_LISTED = 15


def _store(ctx: click.Context) -> tuple[Any, Any]:
    from keel.retrieval.versions import IndexStore

    project = open_project(ctx)
    return project, IndexStore(project.index_dir)


def _admin(ctx: click.Context) -> tuple[Any, Any]:
    from keel.audit import AuditLog
    from keel.policy.pii import redact
    from keel.retrieval.admin import IndexAdmin

    project, store = _store(ctx)
    project.ensure_dirs()
    audit = AuditLog(project.open_database(), redact=redact)
    return IndexAdmin(store, audit), audit


def _actor() -> str:
    return "cli:" + getpass.getuser()


def _version(value: str) -> int:
    from keel.retrieval.admin import parse_version

    return parse_version(value)


@click.group("index")
def command() -> None:
    """Index versions: each ingest publishes one; activate, roll back, compare, report."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@click.pass_context
@handle_errors
def list_versions(ctx: click.Context, as_json: bool) -> None:
    """List the versions on disk; the active one is marked, and the one `rollback` would return to."""
    from keel.retrieval.admin import describe_versions

    _, store = _store(ctx)
    infos = describe_versions(store)
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    if not infos:
        click.echo("No index versions yet: run `keel ingest`.")
        return
    table = Table()
    table.add_column("version")
    table.add_column("created")
    table.add_column("documents", justify="right")
    table.add_column("passages", justify="right")
    table.add_column("embedder")
    table.add_column("")
    for info in infos:
        marker = (
            "[green]● active[/green]" if info.active else "[dim]rollback target[/dim]" if info.rollback_target else ""
        )
        table.add_row(
            f"v{info.version}",
            _when(info.created_at),
            str(info.documents),
            str(info.passages),
            escape(info.embedder),
            marker,
        )
    console.print(table)


@command.command("activate")
@click.argument("version")
@click.pass_context
@handle_errors
def activate(ctx: click.Context, version: str) -> None:
    """Make VERSION (3 or v3) the active index; a running server serves it from its next request."""
    admin, audit = _admin(ctx)
    try:
        moved = admin.activate(_actor(), _version(version))
    finally:
        audit.close()
    click.echo(f"Activated v{moved.version}" + (f" (was v{moved.previous})." if moved.previous is not None else "."))


@command.command("rollback")
@click.pass_context
@handle_errors
def rollback(ctx: click.Context) -> None:
    """Activate the version that was active before the current one (again: the one before that)."""
    admin, audit = _admin(ctx)
    try:
        moved = admin.rollback(_actor())
    finally:
        audit.close()
    click.echo(
        f"Rolled back to v{moved.version}" + (f" (was v{moved.previous})." if moved.previous is not None else ".")
    )


@command.command("history")
@click.option("--json", "as_json", is_flag=True, help="Print the activations as JSON.")
@click.pass_context
@handle_errors
def history(ctx: click.Context, as_json: bool) -> None:
    """Every activation: publish (an ingest), activate, rollback; oldest first."""
    _, store = _store(ctx)
    entries = store.history()
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    table = Table()
    for column in ("when", "kind", "version", "previous", "by"):
        table.add_column(column)
    for e in entries:
        previous = f"v{e.previous}" if e.previous is not None else "-"
        table.add_row(_when(e.at), e.kind, f"v{e.version}", previous, escape(e.actor))
    console.print(table)


@command.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print every changed document and passage as JSON.")
@click.pass_context
@handle_errors
def diff(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """What changed from version A to version B: documents and passages, by chunk id and text hash."""
    from keel.retrieval.diff import diff_versions

    _, store = _store(ctx)
    result = diff_versions(store, _version(a), _version(b))
    if as_json:
        print_json(result.to_dict())
        return
    summary = result.to_dict()["summary"]
    docs, passages = summary["documents"], summary["passages"]
    click.echo(
        f"v{result.a} -> v{result.b}: documents +{docs['added']} -{docs['removed']} ~{docs['changed']};"
        f" passages +{passages['added']} -{passages['removed']} moved {passages['moved']}"
        f" changed {passages['changed']} unchanged {passages['unchanged']}"
    )
    if not result.documents:
        return
    table = Table()
    for column in ("document", "change", "passages +/-", "groups", "title"):
        table.add_column(column)
    for d in result.documents:
        groups = ", ".join(d.groups_after if d.status != "removed" else d.groups_before) or "(no one)"
        if d.status == "changed" and d.groups_before != d.groups_after:
            groups = f"{', '.join(d.groups_before) or '(no one)'} -> {', '.join(d.groups_after) or '(no one)'}"
        title = d.title_after if d.status != "removed" else d.title_before
        if d.status == "changed" and d.title_before != d.title_after:
            title = f"{d.title_before} -> {d.title_after}"
        table.add_row(
            escape(d.path), d.status, f"+{d.passages_added} -{d.passages_removed}", escape(groups), escape(title)
        )
    console.print(table)


@command.command("report")
@click.option("--version", "version", help="The version to report on (default: the active one).")
@click.option(
    "--days", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True, help="Retrieval window."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@handle_errors
def report(ctx: click.Context, version: str | None, days: float, as_json: bool) -> None:
    """Index quality: duplicates, chunk sizes, documents without an ACL, documents nobody retrieved."""
    from keel.retrieval.quality import NEAR_DUPLICATE_JACCARD, quality_report

    project, store = _store(ctx)
    project.ensure_dirs()
    db = project.open_database()
    try:
        result = quality_report(
            store,
            chunking=project.contract.chunking,
            default_groups=project.contract.access.default_groups,
            db=db,
            version=_version(version) if version is not None else None,
            days=days,
        )
    finally:
        db.close()
    data = result.to_dict()
    if as_json:
        print_json(data)
        return
    n = max(result.passages, 1)
    sizes = data["sizes"]
    summary = Table(title=f"Index v{result.version} ({_when(result.created_at)})", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_column("", no_wrap=True)
    dup = data["duplicates"]
    for what, value, ratio in (
        ("documents", str(result.documents), None),
        ("passages", str(result.passages), None),
        ("exact duplicate passages", f"{dup['exact_ratio']:.1%}", dup["exact_ratio"]),
        (f"near duplicates (Jaccard >= {NEAR_DUPLICATE_JACCARD})", f"{dup['near_ratio']:.1%}", dup["near_ratio"]),
        (f"tiny (< {result.min_words} words)", str(len(result.tiny)), len(result.tiny) / n),
        (f"oversized (> {result.max_words} words)", str(len(result.oversized)), len(result.oversized) / n),
        ("documents without their own ACL", str(len(result.acl_gaps)), None),
    ):
        summary.add_row(what, value, _bar(ratio, 1.0, 20) if ratio is not None else "")
    if result.unretrieved is not None:
        u = result.unretrieved
        summary.add_row(
            f"documents not retrieved in {days:g} d ({u.requests} requests)",
            str(len(u.documents)),
            _bar(len(u.documents) / max(result.documents, 1), 1.0, 20),
        )
    console.print(summary)
    click.echo(
        f"\nPassage size in words: min {sizes['min']}  p50 {sizes['p50']}  p95 {sizes['p95']}  max {sizes['max']}"
    )
    peak = max((b["count"] for b in sizes["histogram"]), default=0)
    for b in sizes["histogram"]:
        label = f"{b['low']}-{b['high']}" if b["high"] is not None else f">{b['low'] - 1}"
        click.echo(f"  {label:>9} {_bar(b['count'], peak, _BAR):<{_BAR}} {b['count']}")
    for gap in result.acl_gaps:
        who = "readable by no one" if gap.acl == "none" else f"default groups only ({', '.join(gap.groups)})"
        console.print(f"[yellow]no ACL of its own[/yellow] {escape(gap.path)}: {who}")
    for pair in result.near_duplicates[:_LISTED]:
        where = f"{escape(pair.a_path)} ~ {escape(pair.b_path)}"
        console.print(f"[yellow]near duplicate[/yellow] {where} (Jaccard {pair.jaccard:.2f})")
    if result.unretrieved is not None:
        docs = result.unretrieved.documents
        for _, path in docs[:_LISTED]:
            console.print(f"[dim]not retrieved in {days:g} d[/dim] {escape(path)}")
        if len(docs) > _LISTED:
            console.print(f"[dim]... and {len(docs) - _LISTED} more (--json lists them all)[/dim]")
    for note in result.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")


def _bar(value: float, peak: float, width: int) -> str:
    if peak <= 0 or value <= 0:
        return ""
    return "█" * max(1, round(value / peak * width))


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"
