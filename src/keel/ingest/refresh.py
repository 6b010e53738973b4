"""Refresh the sources that are due: ``keel ingest --due`` and the refresh task of ``keel serve``.

A refresh ingests only the due sources (stale, failing or never ingested; see
:mod:`keel.ingest.freshness`), leaves the others as they are, and publishes a new index
version when anything changed; a running server picks it up on its next request.
Each source refreshed is audited (``source.refreshed``) and logged. A source that
turns failing, or fails with a new error, is audited (``source.failed``) and logged as
a warning naming its owner; while it keeps failing the same way it is retried at every
check, quietly, and its documents from before stay served. Audit records name the
source, not the owner: the audit log redacts e-mail addresses, and the contract says
who owns each source.

One refresh runs at a time; in ``keel serve`` it runs in a worker thread, never on the
event loop, and a shutdown waits for the one in flight to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from keel.audit import AuditEvent, AuditLog
from keel.contract import Contract
from keel.ingest.acl import source_for
from keel.ingest.freshness import SourceFreshness, SourceOutcome, clip_error, source_freshness
from keel.ingest.ingestor import Ingestor, IngestReport, Progress
from keel.store import Database

__all__ = ["RefreshResult", "SourceRefresher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RefreshResult:
    """What one refresh found due and what ingesting those sources did."""

    due: list[SourceFreshness] = field(default_factory=list)
    report: IngestReport | None = None
    """``None`` when nothing was due."""

    @property
    def refreshed(self) -> list[str]:
        """Sources ingested successfully."""
        return [o.source for o in self._outcomes if o.ok]

    @property
    def failed(self) -> list[str]:
        """Sources whose ingest failed."""
        return [o.source for o in self._outcomes if not o.ok]

    @property
    def _outcomes(self) -> list[SourceOutcome]:
        return self.report.sources if self.report is not None else []


class SourceRefresher:
    """Ingests the due sources of one project, one refresh at a time, and audits each outcome."""

    def __init__(
        self,
        contract: Contract,
        *,
        ingestor: Ingestor,
        db: Database,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._contract = contract
        self._ingestor = ingestor
        self._db = db
        self._audit = audit
        self._clock = clock
        self._lock = threading.Lock()

    def freshness(self) -> list[SourceFreshness]:
        """Every contract source's freshness now."""
        return source_freshness(self._contract, self._db, now=self._clock())

    def refresh(self, *, progress: Progress | None = None, only: Collection[str] | None = None) -> RefreshResult | None:
        """Ingest the sources that are due now (of ``only``, if given); ``None`` if another refresh is running."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            before = {f.source: f for f in self.freshness()}
            due = [f for f in before.values() if f.due and (only is None or f.source in only)]
            if not due:
                return RefreshResult()
            try:
                report = self._ingestor.run(progress=progress, sources=[f.source for f in due])
            except Exception as exc:
                reason = f"ingest failed: {type(exc).__name__}: {exc}"
                for f in due:
                    self._failed(f, reason, f.documents)
                raise
            self._announce(before, report)
            return RefreshResult(due=due, report=report)
        finally:
            self._lock.release()

    async def run(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds, off the event loop, until cancelled; a failure is only logged."""
        while True:
            running = asyncio.ensure_future(asyncio.to_thread(self.refresh))
            try:
                await asyncio.shield(running)
            except asyncio.CancelledError:
                # Shutting down: let the ingest in flight finish before the database is closed under it.
                with contextlib.suppress(Exception):
                    await running
                raise
            except Exception:  # the refresh must never take the service down
                log.exception("refreshing the due sources failed")
            await asyncio.sleep(interval_s)

    def _announce(self, before: dict[str, SourceFreshness], report: IngestReport) -> None:
        changes: dict[str, dict[str, int]] = {}
        for kind, paths in (("added", report.added), ("updated", report.updated), ("deleted", report.deleted)):
            for path in paths:
                source = source_for(self._contract, path)
                if source is not None:
                    counts = changes.setdefault(source.name, {"added": 0, "updated": 0, "deleted": 0})
                    counts[kind] += 1
        for outcome in report.sources:
            previous = before[outcome.source]
            if not outcome.ok:
                self._failed(previous, outcome.error or "unknown error", outcome.documents)
                continue
            counts = changes.get(outcome.source, {"added": 0, "updated": 0, "deleted": 0})
            log.info(
                "source %s refreshed: %d documents, index version %s%s",
                outcome.source,
                outcome.documents or 0,
                report.version,
                " (recovered)" if previous.failing else "",
            )
            self._event(
                "source.refreshed",
                outcome.source,
                {
                    "documents": outcome.documents,
                    "passages": outcome.passages,
                    "index_version": report.version,
                    "previous_index_version": report.previous_version,
                    "recovered": previous.failing,
                    **counts,
                },
            )

    def _failed(self, previous: SourceFreshness, error: str, documents: int | None) -> None:
        if previous.failing and previous.last_error == clip_error(error):
            log.debug("source %s is still failing: %s", previous.source, error)
            return
        log.warning("source %s is failing (owner: %s): %s", previous.source, previous.owner or "none", error)
        self._event(
            "source.failed",
            previous.source,
            {"error": error, "documents_kept": documents},
        )

    def _event(self, action: str, subject: str, data: dict[str, object]) -> None:
        if self._audit is not None:
            self._audit.record(AuditEvent(action=action, actor="system", tenant="*", subject=subject, data=data))
