"""keel db: the database's schema version, and applying migrations (a deployment's migration Job)."""

from __future__ import annotations

import click

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]


@click.group("db")
def command() -> None:
    """The database behind every store: SQLite by default, PostgreSQL with KEEL_DATABASE_URL."""


@command.command("upgrade")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def upgrade(ctx: click.Context, as_json: bool) -> None:
    """Apply the schema migrations the database lacks (safe to run from several replicas at once)."""
    from keel.store.migrate import upgrade_database

    project = open_project(ctx)
    project.ensure_dirs()
    db = project.open_database(auto_migrate=False)
    try:
        result = upgrade_database(db)
    finally:
        db.close()
    if as_json:
        print_json(result.to_dict())
        return
    if result.applied:
        console.print(
            f"{result.location}: applied migration(s) {', '.join(map(str, result.applied))};"
            f" schema version {result.version}"
        )
    else:
        console.print(f"{result.location}: up to date at schema version {result.version}")


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Which database is in use and its schema version (exits 1 when migrations are pending)."""
    from keel.store.migrate import database_status

    project = open_project(ctx)
    project.ensure_dirs()
    db = project.open_database(auto_migrate=False)
    try:
        state = database_status(db)
    finally:
        db.close()
    if as_json:
        print_json(state.to_dict())
    else:
        console.print(f"backend   {state.backend}\nlocation  {state.location}")
        console.print(f"schema    {state.version} of {state.latest}" + (" (pending)" if state.pending else ""))
    if state.pending:
        ctx.exit(1)
