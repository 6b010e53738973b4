"""keel ingest: read docs/ (or only the sources that are due) into a new index version, with progress and a summary."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]

_STAGES = {
    "read": "Reading files",
    "parse": "Parsing files",
    "embed": "Embedding passages",
    "index": "Writing index",
}


@click.command("ingest")
@click.option("--rebuild", is_flag=True, help="Publish a new index version even if nothing changed.")
@click.option(
    "--due",
    is_flag=True,
    help="Ingest only the sources that are due (stale, failing or never ingested); the others stay as they are.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where parsing and embedding run: in this process, or as Ray tasks on a Ray cluster.",
)
@click.option(
    "--ray-address",
    envvar="RAY_ADDRESS",
    default="auto",
    show_default=True,
    help="The Ray cluster for --engine ray (HOST:PORT of its head; env RAY_ADDRESS; auto: the one on this machine).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@handle_errors
def command(ctx: click.Context, rebuild: bool, due: bool, engine: str, ray_address: str, as_json: bool) -> None:
    """Ingest the project's docs/ folder (incremental: unchanged files are skipped).

    With --due, only the sources whose refresh interval has passed, whose last ingest
    failed or that were never ingested are read; each is audited (run it from cron).
    Exits 1 if any file or source could not be read (the others are still indexed).

    With --engine ray, files are parsed and passages embedded as Ray tasks on the Ray
    cluster at --ray-address; the database and the index version are written here, as
    with the local engine, so both write the same index.
    """
    from keel.audit import AuditLog
    from keel.ingest.ingestor import Ingestor
    from keel.ingest.refresh import SourceRefresher
    from keel.policy.pii import redact
    from keel.retrieval.embedder import MiniLMEmbedder
    from keel.retrieval.versions import IndexStore

    if due and rebuild:
        raise click.UsageError("--due and --rebuild cannot be combined")
    project = open_project(ctx)
    if not project.docs_dir.is_dir():
        raise click.ClickException(f"no docs/ folder in {project.root} (create it and add documents)")
    project.ensure_dirs()
    db = project.open_database()
    embedder = MiniLMEmbedder(cache_dir=project.cache_dir)
    ray_engine = None
    if engine == "ray":
        from keel.ingest.ray_engine import RayEngine

        ray_engine = RayEngine(embedder=embedder, address=ray_address)
    ingestor = Ingestor(
        contract=project.contract,
        docs_dir=project.docs_dir,
        db=db,
        index_store=IndexStore(project.index_dir),
        embedder=embedder,
        engine=ray_engine,
    )
    audit = AuditLog(db, redact=redact) if due else None
    refresher = SourceRefresher(project.contract, ingestor=ingestor, db=db, audit=audit)
    due_names: list[str] | None = None
    report = None
    try:
        if ray_engine is not None:
            if not as_json:
                console.print(f"Connecting to the Ray cluster at {ray_address} ...", highlight=False)
            ray_engine.start()
        if due:
            pending = [f for f in refresher.freshness() if f.due]
            if not as_json:
                _print_due(pending)
            if not pending:
                if as_json:
                    print_json({"due": [], "version": IndexStore(project.index_dir).active_version(), "sources": []})
                return
        with Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=as_json,
            disable=as_json,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            embedder.warm_up()
            if due:
                result = refresher.refresh(progress=progress, only=[f.source for f in pending])
                if result is not None:
                    due_names, report = [f.source for f in result.due], result.report
            else:
                report = ingestor.run(progress=progress, rebuild=rebuild)
    finally:
        if ray_engine is not None:
            ray_engine.close()
        if audit is not None:
            audit.close()
        db.close()
    if report is None:
        if as_json:
            print_json(
                {"due": due_names or [], "version": IndexStore(project.index_dir).active_version(), "sources": []}
            )
        return
    if as_json:
        print_json(
            {
                **({"due": due_names} if due_names is not None else {}),
                "version": report.version,
                "previous_version": report.previous_version,
                "documents": report.documents,
                "passages": report.passages,
                "passages_embedded": report.passages_embedded,
                "added": report.added,
                "updated": report.updated,
                "unchanged": len(report.unchanged),
                "deleted": report.deleted,
                "acl_changed": report.acl_changed,
                "failed": [{"path": p, "reason": r} for p, r in report.failed],
                "skipped": [{"path": p, "reason": r} for p, r in report.skipped],
                "no_acl": report.no_acl,
                "widened_acl": report.widened_acl,
                "duplicates": report.duplicates,
                "embedded_instructions": report.embedded_instructions,
                "seconds": round(report.seconds, 2),
                "engine": {"name": report.engine, "tasks": report.engine_tasks, "workers": report.engine_workers},
                "sources": [o.to_dict() for o in report.sources],
            }
        )
    else:
        _print_report(report)
    if report.failed or any(not o.ok for o in report.sources):
        sys.exit(1)


def _print_due(due: list[Any]) -> None:
    from keel.durations import format_age

    if not due:
        console.print("No source is due: every source is fresh.")
        return
    listed = []
    for f in due:
        since = f", last success {format_age(f.age_s)} ago" if f.age_s is not None else ""
        listed.append(f"{f.source} ({f.state}{since})")
    console.print("Due: " + ", ".join(listed), highlight=False)


def _print_report(report: object) -> None:
    from keel.ingest.ingestor import IngestReport

    assert isinstance(report, IngestReport)
    if report.per_document:
        docs = Table(title="Documents", show_lines=False)
        docs.add_column("path")
        docs.add_column("title")
        docs.add_column("groups")
        docs.add_column("acl from")
        docs.add_column("passages", justify="right")
        for row in report.per_document:
            groups = ", ".join(row.groups) if row.groups else "[red](no one)[/red]"
            docs.add_row(row.path, row.title, groups, row.acl_origin, str(row.passages))
        console.print(docs)
    summary = Table(title="Ingest summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    version = (
        f"v{report.version}" + (" (new)" if report.version != report.previous_version else " (unchanged)")
        if report.version is not None
        else "-"
    )
    for what, value in (
        ("index version", version),
        ("documents", report.documents),
        ("passages", report.passages),
        ("added", len(report.added)),
        ("updated", len(report.updated)),
        ("unchanged", len(report.unchanged)),
        ("deleted", len(report.deleted)),
        ("ACL changed", len(report.acl_changed)),
        ("passages embedded", report.passages_embedded),
        ("duplicate passages", sum(len(d) - 1 for d in report.duplicates)),
        ("failed", len(report.failed)),
        ("skipped", len(report.skipped)),
        ("seconds", f"{report.seconds:.1f}"),
        *(
            (("engine", f"ray ({report.engine_tasks} tasks on {len(report.engine_workers)} workers)"),)
            if report.engine == "ray"
            else ()
        ),
    ):
        summary.add_row(what, str(value))
    console.print(summary)
    if report.sources:
        sources = Table(title="Sources" + (" ingested" if report.scope is not None else ""))
        for column in ("source", "outcome", "documents", "passages", "error"):
            sources.add_column(column, justify="right" if column in ("documents", "passages") else "left")
        for outcome in report.sources:
            sources.add_row(
                outcome.source,
                "[green]ok[/green]" if outcome.ok else "[red]failed[/red]",
                str(outcome.documents),
                str(outcome.passages),
                escape(outcome.error or ""),
            )
        console.print(sources)
    for places in report.duplicates:
        console.print(f"[yellow]duplicate passage[/yellow] in {', '.join(places)}")
    for path in report.no_acl:
        console.print(f"[yellow]no ACL[/yellow] {path}: readable by no one (set groups in front matter or sources)")
    for place in report.embedded_instructions:
        console.print(f"[yellow]instructions to an AI[/yellow] in {place}: those sentences are left out of the index")
    for path in report.widened_acl:
        console.print(f"[yellow]front matter widens access[/yellow] beyond its source's groups: {path}")
    for path, reason in report.failed:
        console.print(f"[red]failed[/red] {path}: {reason}")
    for path, reason in report.skipped:
        console.print(f"[dim]skipped {path}: {reason}[/dim]")
