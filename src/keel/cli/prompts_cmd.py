"""keel prompts: list, show and diff the prompt templates a project can pin."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]


def _library(ctx: click.Context) -> tuple[Any, Any]:
    from keel.pipeline.prompts import PromptLibrary

    project = open_project(ctx)
    return project, PromptLibrary.load(project.root / "prompts")


@click.group("prompts")
def command() -> None:
    """Prompt templates: the bundled ones and the project's prompts/ folder."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the templates as JSON.")
@click.pass_context
@handle_errors
def list_prompts(ctx: click.Context, as_json: bool) -> None:
    """List every template with its variables, target models, eval suite and origin."""
    project, library = _library(ctx)
    rows = []
    for t in library.templates():
        rows.append(
            {
                "ref": t.ref,
                "description": t.description,
                "variables": list(t.variables),
                "models": list(t.models),
                "eval_suite": t.eval_suite,
                "eval_suite_exists": bool(t.eval_suite) and (project.root / t.eval_suite).is_file(),
                "origin": t.origin,
                "overrides_bundled": library.overrides_bundled(t.ref),
                "path": t.path,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table()
    table.add_column("ref", no_wrap=True)
    for column in ("description", "variables", "models"):
        table.add_column(column)
    table.add_column("eval suite", overflow="fold")
    table.add_column("from")
    for row in rows:
        suite = row["eval_suite"] or "-"
        if row["eval_suite"] and not row["eval_suite_exists"]:
            suite += " [yellow](missing)[/yellow]"
        origin = row["origin"] + (" (overrides bundled)" if row["overrides_bundled"] else "")
        table.add_row(
            row["ref"],
            escape(row["description"]),
            ", ".join(row["variables"]) or "-",
            ", ".join(row["models"]) or "(any)",
            suite,
            origin,
        )
    console.print(table)


@command.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the template as JSON.")
@click.pass_context
@handle_errors
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show the template REF (id@version, or id for its newest version)."""
    _, library = _library(ctx)
    template = library.get(ref)
    if as_json:
        print_json(template.to_dict())
        return
    for name, value in (
        ("ref", template.ref),
        ("description", template.description),
        ("variables", ", ".join(template.variables) or "-"),
        ("models", ", ".join(template.models) or "(any)"),
        ("eval suite", template.eval_suite or "-"),
        ("from", f"{template.origin} ({template.path})"),
    ):
        click.echo(f"{name + ':':<13}{value}")
    for name, text in (("system", template.system), ("user", template.user)):
        click.echo(f"\n--- {name} ---")
        click.echo(text.rstrip("\n"))


@command.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.pass_context
@handle_errors
def diff(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """Show how template B differs from template A: changed fields, then a unified diff (exit 0 either way)."""
    from keel.pipeline.prompts import diff_templates

    _, library = _library(ctx)
    result = diff_templates(library.get(a), library.get(b))
    if as_json:
        print_json(result.to_dict())
        return
    if not result.changed:
        click.echo(f"{result.a} and {result.b} are identical.")
        return
    lines = result.to_dict()["lines"]
    click.echo(f"{result.a} -> {result.b}: changed {', '.join(result.changed)}")
    for change in result.fields:
        click.echo(f"  {change.name}: {_plain(change.before)} -> {_plain(change.after)}")
    for name in ("system", "user"):
        if lines[name]["added"] or lines[name]["removed"]:
            click.echo(f"  {name}: +{lines[name]['added']} -{lines[name]['removed']} lines")
    for body in (result.system, result.user):
        if body:
            click.echo("")
        for line in body:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            style = "cyan" if line.startswith("@@") else style
            console.print(escape(line), style=style, highlight=False)


def _plain(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "-" if value in (None, "") else repr(value) if isinstance(value, str) else str(value)
