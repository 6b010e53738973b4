"""keel export finetune: a chat-format dataset from approved answers and corrections."""

from __future__ import annotations

from pathlib import Path

import click

from keel.cli.audit_cmd import parse_since
from keel.cli.common import console, handle_errors, open_project

__all__ = ["command"]


@click.group("export")
def command() -> None:
    """Datasets built from production traffic."""


@command.command("finetune")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write into.")
@click.option("--since", help="Start: a duration ago (30d) or an ISO date. Default: everything.")
@click.option("--tenant", help="Only this tenant's interactions.")
@click.pass_context
@handle_errors
def finetune(ctx: click.Context, out: Path, since: str | None, tenant: str | None) -> None:
    """Write finetune.jsonl (PII-redacted, de-duplicated) and manifest.json into --out."""
    from keel.ops.finetune import export_finetune
    from keel.policy.pii import redact

    project = open_project(ctx)
    project.ensure_dirs()
    db = project.open_database()
    try:
        manifest = export_finetune(db, out, redact=redact, since=parse_since(since) if since else None, tenant=tenant)
    finally:
        db.close()
    console.print(
        f"{manifest.examples} example(s) ({manifest.from_corrections} corrections, {manifest.from_approvals} approved"
        f" answers; {manifest.duplicates_dropped} duplicates dropped, {manifest.skipped} skipped) written to {out}"
    )
