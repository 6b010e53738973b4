"""Helpers shared by the CLI's commands."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from keel.errors import ConfigError, ServiceError

__all__ = ["console", "err_console", "handle_errors", "open_project", "print_json", "run_async", "settings_from"]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn Keel's errors into a clear message and exit status instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            code = getattr(exc, "code", None)
            label = f"error ({code}):" if isinstance(code, str) else "error:"
            err_console.print(f"[red]{label}[/red] " + escape(str(exc)), highlight=False)
            sys.exit(2)
        except ServiceError as exc:
            err_console.print(f"[red]error ({exc.code}):[/red] " + escape(exc.message), highlight=False)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def settings_from(ctx: click.Context, **overrides: Any) -> Any:
    """The deployment settings for this invocation."""
    from keel.settings import Settings

    project = ctx.obj.get("project")
    values = {k: v for k, v in overrides.items() if v is not None}
    if project is not None:
        values["project"] = project
    return Settings(**values)


def open_project(ctx: click.Context) -> Any:
    """Open the project (validating its contract)."""
    from keel.project import Project

    return Project.open(settings_from(ctx))


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion."""
    return asyncio.run(coro)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
