"""GET /healthz (alive) and GET /readyz (ready to serve, per component)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness, per component")
async def readyz(request: Request) -> JSONResponse:
    """200 when store, index, embedder and every model are ready; 503 otherwise, and at once while draining."""
    admission = getattr(request.app.state, "admission", None)
    if admission is not None and admission.draining:
        return JSONResponse({"status": "shutting_down", "components": {}}, status_code=503)
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return JSONResponse({"status": "starting", "components": {}}, status_code=503)
    components = runtime.readiness()
    ready = all(c.ready for c in components.values())
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "components": {name: {"ready": c.ready, "detail": c.detail} for name, c in components.items()},
        },
        status_code=200 if ready else 503,
    )
