"""keel serve: run the HTTP server."""

from __future__ import annotations

import click

from keel.cli.common import console, handle_errors, settings_from

__all__ = ["command"]


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1, or KEEL_HOST).")
@click.option("--port", type=int, default=None, help="Port (default 8080, or KEEL_PORT; 0 picks a free one).")
@click.pass_context
@handle_errors
def command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the API on HOST:PORT until interrupted; SIGTERM drains requests in flight first."""
    import uvicorn

    from keel.project import Project
    from keel.server import create_app
    from keel.server.serving import DrainingServer

    settings = settings_from(ctx, host=host, port=port)
    Project.open(settings)  # fail fast, with the contract's errors, before binding
    app = create_app(settings)
    console.print(f"Keel serving {settings.project.resolve()} on http://{settings.host}:{settings.port}")
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)),
    )
    DrainingServer(config, admission=app.state.admission, grace_s=settings.shutdown_grace_s).run()
