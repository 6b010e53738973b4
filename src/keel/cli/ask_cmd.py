"""keel ask: ask a question, in-process or against a running server."""

from __future__ import annotations

from typing import Any

import click

from keel.cli.common import console, handle_errors, print_json, run_async, settings_from

__all__ = ["command"]


@click.command("ask")
@click.argument("question")
@click.option("--key", envvar="KEEL_API_KEY", required=True, help="API key (or KEEL_API_KEY).")
@click.option("--app", "app_name", default=None, help="Client app from the contract.")
@click.option("--top-k", type=int, default=None, help="Passages to ground the answer in.")
@click.option("--url", default=None, help="Ask a running server (e.g. http://127.0.0.1:8080) instead of in-process.")
@click.option("--json", "as_json", is_flag=True, help="Print the full response as JSON.")
@click.pass_context
@handle_errors
def command(
    ctx: click.Context, question: str, key: str, app_name: str | None, top_k: int | None, url: str | None, as_json: bool
) -> None:
    """Ask QUESTION as the principal of --key; prints the answer and its citations."""
    if url:
        body = _ask_http(url, key, question, app_name, top_k)
    else:
        body = run_async(_ask_local(ctx, key, question, app_name, top_k))
    if as_json:
        print_json(body)
        return
    console.print(f"[bold]{body['mode']}[/bold]  ({body['latency_ms']:.0f} ms, request {body['request_id']})")
    console.print(body["answer"], highlight=False, markup=False)
    for c in body["citations"]:
        console.print(f"  [{c['number']}] {c['title']} — {c['source']}", highlight=False, markup=False)
    for d in body["degraded"]:
        console.print(f"[yellow]degraded[/yellow] {d['component']}: {d['reason']}")


async def _ask_local(ctx: click.Context, key: str, question: str, app_name: str | None, top_k: int | None) -> Any:
    from keel.errors import UnknownApp
    from keel.runtime import Runtime
    from keel.server.render import ask_body

    settings = settings_from(ctx)
    runtime = Runtime.from_settings(settings)
    try:
        app = None
        if app_name:
            try:
                app = runtime.contract.app(app_name)
            except KeyError:
                raise UnknownApp(f"Unknown app {app_name!r}.") from None
        await runtime.warm_up()
        request = runtime.new_context(question=question, credential=key, endpoint="ask", app=app, top_k=top_k)
        await runtime.pipeline.run(request)
        return ask_body(request)
    finally:
        await runtime.close()


def _ask_http(url: str, key: str, question: str, app_name: str | None, top_k: int | None) -> Any:
    import httpx

    payload: dict[str, Any] = {"question": question}
    if app_name:
        payload["app"] = app_name
    if top_k:
        payload["top_k"] = top_k
    try:
        response = httpx.post(
            url.rstrip("/") + "/v1/ask", json=payload, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    body = response.json()
    if response.status_code >= 400:
        error = body.get("error", {})
        raise click.ClickException(f"{response.status_code} {error.get('code')}: {error.get('message')}")
    return body
