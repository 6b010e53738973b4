"""GET /v1/models: the models and apps a caller can name in ``model``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from keel.server.deps import principal_of, runtime_of

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models", summary="Models and apps (OpenAI-compatible list)")
async def list_models(request: Request) -> dict[str, Any]:
    """Each declared model and app; an app name in ``model`` selects that app."""
    principal_of(request)
    contract = runtime_of(request).contract
    data: list[dict[str, Any]] = [
        {
            "id": m.name,
            "object": "model",
            "created": 0,
            "owned_by": "keel",
            "keel": {"kind": "model", "tier": m.tier, "version": m.version, "context_tokens": m.context_tokens},
        }
        for m in contract.models
    ]
    model_names = {m.name for m in contract.models}
    data += [
        {
            "id": a.name,
            "object": "model",
            "created": 0,
            "owned_by": "keel",
            "keel": {"kind": "app", "retrieval": a.retrieval, "description": a.description},
        }
        for a in contract.apps
        if a.name not in model_names
    ]
    return {"object": "list", "data": data}
