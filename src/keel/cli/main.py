"""The ``keel`` command: a thin layer over the library.

Every command acts on the project in the current directory, or the one named by
``--project DIR`` (or ``KEEL_PROJECT``).
"""

from __future__ import annotations

from pathlib import Path

import click

from keel import __version__
from keel.cli import (
    ask_cmd,
    audit_cmd,
    costs_cmd,
    db_cmd,
    drift_cmd,
    eval_cmd,
    export_cmd,
    feedback_cmd,
    index_cmd,
    ingest_cmd,
    init_cmd,
    keys_cmd,
    prompts_cmd,
    release_cmd,
    serve_cmd,
    slo_cmd,
    sources_cmd,
    traces_cmd,
)

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keel")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="KEEL_PROJECT",
    default=None,
    help="Project directory (holds keel.yaml and docs/). Default: the current directory.",
)
@click.pass_context
def main(ctx: click.Context, project: Path | None) -> None:
    """Keel: a permission-aware GenAI assistant run against a production contract."""
    ctx.ensure_object(dict)
    ctx.obj["project"] = project


for _module in (
    init_cmd,
    db_cmd,
    ingest_cmd,
    index_cmd,
    sources_cmd,
    serve_cmd,
    ask_cmd,
    keys_cmd,
    traces_cmd,
    costs_cmd,
    eval_cmd,
    prompts_cmd,
    release_cmd,
    audit_cmd,
    feedback_cmd,
    slo_cmd,
    drift_cmd,
    export_cmd,
):
    main.add_command(_module.command)
