"""GET /metrics: Prometheus text exposition (no labels that name a caller; see keel.observability)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel.observability import CONTENT_TYPE
from keel.server.deps import runtime_of

__all__ = ["router"]

router = APIRouter()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Request, stage, token, cost, cache, guard and model metrics, for a Prometheus scraper."""
    body = await asyncio.to_thread(runtime_of(request).metrics.exposition)
    return Response(content=body, media_type=CONTENT_TYPE)
