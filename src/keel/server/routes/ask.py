"""POST /v1/ask: a question in, a cited answer (or a labelled non-answer) out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from keel.errors import UnknownApp
from keel.server.deps import bearer, runtime_of
from keel.server.errors import request_id_of
from keel.server.render import ask_body, json_response
from keel.server.schemas import AskRequest, AskResponse, ErrorEnvelope

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/ask",
    response_model=AskResponse,
    responses={400: {"model": ErrorEnvelope}, 401: {"model": ErrorEnvelope}, 413: {"model": ErrorEnvelope}},
    summary="Ask a question of the documents you may read",
)
async def ask(body: AskRequest, request: Request) -> Response:
    """Answer ``question`` from the caller's permitted documents, with citations."""
    runtime = runtime_of(request)
    credential = bearer(request)
    app = None
    if body.app is not None:
        try:
            app = runtime.contract.app(body.app)
        except KeyError:
            raise UnknownApp(
                f"Unknown app {body.app!r}; the contract declares: {', '.join(a.name for a in runtime.contract.apps)}."
            ) from None
    ctx = runtime.new_context(
        question=body.question,
        credential=credential,
        endpoint="ask",
        app=app,
        request_id=request_id_of(request),
        top_k=body.top_k,
        tags=tuple(dict.fromkeys(body.tags)),
        traceparent=request.headers.get("traceparent"),
    )
    await runtime.pipeline.run(ctx)
    return json_response(ask_body(ctx), headers=ctx.response_headers)
