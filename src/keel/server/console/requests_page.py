"""The Requests pages: ``/console/requests`` (a filtered list) and ``/console/requests/{id}`` (one request).

Thin handlers: the filters and the request's layout come from
:mod:`keel.server.console.request_view`, the rows from :func:`keel.tracing.query.search_traces`.
A request the viewer may not see is a console "not found" page, whether or not it exists.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel.server.console.charts import waterfall
from keel.server.console.request_view import MODES, build_query, may_view, request_detail, sees_tenant
from keel.server.console.web import page_session, redirect, render
from keel.server.deps import runtime_of
from keel.tracing.query import search_traces

__all__ = ["router"]

router = APIRouter(prefix="/console/requests", include_in_schema=False)

PAGE_SIZE = 50


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


@router.get("")
async def list_requests(request: Request) -> Response:
    """Requests the signed-in key may see, newest first, filtered."""
    session = page_session(request)
    params = dict(request.query_params)
    wanted = params.get("request_id", "").strip()
    if wanted:
        return redirect(f"/console/requests/{quote(wanted, safe='')}")
    runtime = runtime_of(request)
    query, form, errors = build_query(params, session.principal, before=params.get("before"), limit=PAGE_SIZE)
    await asyncio.to_thread(runtime.traces.flush)
    page = await asyncio.to_thread(search_traces, runtime.db, query)
    filters = {k: v for k, v in form.items() if v and (k != "principal" or sees_tenant(session.principal))}
    next_url = f"/console/requests?{urlencode({**filters, 'before': page.next_before})}" if page.next_before else None
    return render(
        request,
        "requests.html",
        session=session,
        title="Requests",
        page=page,
        form=form,
        errors=errors,
        tenant_wide=sees_tenant(session.principal),
        apps=[a.name for a in runtime.contract.apps],
        modes=MODES,
        next_url=next_url,
        first_url=f"/console/requests?{urlencode(filters)}" if params.get("before") else None,
        when=_when,
    )


@router.get("/{request_id}")
async def request_page(request_id: str, request: Request) -> Response:
    """One request: its summary, stage timings, retrieval, routing, guards, feedback."""
    session = page_session(request)
    runtime = runtime_of(request)
    record = await asyncio.to_thread(runtime.traces.get, request_id)
    if record is None or not may_view(record, session.principal):
        return render(
            request,
            "request_not_found.html",
            session=session,
            title="Not found",
            status_code=404,
            request_id=request_id,
        )
    detail = await asyncio.to_thread(request_detail, record, session.principal, db=runtime.db, index=runtime.index)
    return render(
        request,
        "request.html",
        session=session,
        title=f"Request {request_id}",
        r=detail,
        chart=waterfall(detail.spans, total_ms=max(detail.latency_ms, 1e-3)),
        when=_when,
    )
