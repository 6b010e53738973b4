"""keel init DIR: scaffold a working project."""

from __future__ import annotations

import re
from pathlib import Path

import click

from keel.cli.common import console, handle_errors
from keel.contract.template import CONTRACT_TEMPLATE

__all__ = ["command"]


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing keel.yaml.")
@handle_errors
def command(directory: Path, force: bool) -> None:
    """Create DIRECTORY/keel.yaml (the contract) and an empty DIRECTORY/docs/."""
    contract = directory / "keel.yaml"
    if contract.exists() and not force:
        raise click.ClickException(f"{contract} already exists (use --force to overwrite it)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "docs").mkdir(exist_ok=True)
    name = re.sub(r"[^a-z0-9._-]+", "-", directory.resolve().name.lower()).strip("-._") or "keel"
    contract.write_text(CONTRACT_TEMPLATE.format(name=name), encoding="utf-8")
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".keel/\n", encoding="utf-8")
    console.print(f"Created {contract} and {directory / 'docs'}/.")
    console.print("Next: put Markdown, text, HTML or PDF files in docs/, then run:")
    console.print(f"  keel --project {directory} ingest")
    console.print(f"  keel --project {directory} keys create --principal you --groups everyone")
    console.print(f"  keel --project {directory} serve")
