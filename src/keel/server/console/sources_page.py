"""The sources page: index versions and their activation history, each source's freshness, index quality.

Reviewers see the index versions (without counts), the activation history, and the
freshness of the sources their tenant may read: name, owner, refresh interval, age of
the last success and state. Counts of documents and passages, last errors and the
quality report (which names document paths) reveal that restricted documents exist,
so only admins see them. The quality report reads every passage of the active
version (a second or two), so it is computed on demand (``?report=1``), in a thread.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel.contract import Contract
from keel.durations import format_age
from keel.errors import IndexVersionError, NotReady
from keel.ingest.freshness import SourceFreshness, source_freshness
from keel.retrieval.activations import Activation
from keel.retrieval.admin import VersionInfo, describe_versions
from keel.retrieval.quality import QualityReport, quality_report
from keel.retrieval.versions import IndexStore
from keel.server.console.charts import bar_chart
from keel.server.console.web import page_session, render, roles_of
from keel.server.deps import runtime_of
from keel.store import Database

__all__ = ["HISTORY_SHOWN", "SourcesView", "router", "sources_view"]

HISTORY_SHOWN = 20
"""Most recent activations listed."""

router = APIRouter(prefix="/console/sources", include_in_schema=False)


@dataclass(frozen=True, kw_only=True)
class SourcesView:
    """What the sources page shows at one moment."""

    now: float
    versions: list[VersionInfo]
    """Newest first."""
    history: list[Activation]
    """The latest activations, newest first."""
    sources: list[SourceFreshness]


def sources_view(contract: Contract, db: Database, store: IndexStore, *, tenant: str, now: float) -> SourcesView:
    """Index versions, activation history, and the freshness of the sources ``tenant`` may read."""
    readable = {s.name for s in contract.sources if not s.tenants or tenant in s.tenants}
    return SourcesView(
        now=now,
        versions=list(reversed(describe_versions(store))),
        history=list(reversed(store.history()))[:HISTORY_SHOWN],
        sources=[f for f in source_freshness(contract, db, now=now) if f.source in readable],
    )


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "-"


@router.get("")
async def sources(request: Request, report: str | None = None) -> Response:
    """Index versions, source freshness and, for admins on request, the active version's quality."""
    session = page_session(request, role="reviewer")
    runtime = runtime_of(request)
    admin = "admin" in roles_of(session)
    view = await asyncio.to_thread(
        sources_view, runtime.contract, runtime.db, runtime.index, tenant=session.principal.tenant, now=time.time()
    )
    quality: QualityReport | None = None
    quality_error: str | None = None
    if admin and report == "1":
        try:
            quality = await asyncio.to_thread(
                quality_report,
                runtime.index,
                chunking=runtime.contract.chunking,
                default_groups=runtime.contract.access.default_groups,
                db=runtime.db,
            )
        except (NotReady, IndexVersionError) as exc:
            quality_error = str(exc)
    histogram = []
    if quality is not None:
        histogram = [
            (f"{b.low}-{b.high}" if b.high is not None else f">{b.low - 1}", float(b.count))
            for b in quality.sizes.histogram
        ]
    return render(
        request,
        "sources.html",
        session=session,
        title="Sources",
        v=view,
        admin=admin,
        quality=quality,
        quality_error=quality_error,
        size_chart=bar_chart(histogram, label="Passages by size in words") if histogram else "",
        when=_when,
        age=format_age,
    )
