"""Shadow releases: a sampled copy of live requests runs on the candidate, off the response path.

When an app has a shadow candidate, each finished live request is copied to it with
the candidate's share as probability, after its response is complete. The copy runs
as the same principal, through the same guards and the same permission-filtered
retrieval, on the candidate's model, prompt and index; its answer is never returned,
cached, handed off or charged to the ledger. At most ``rollout.shadow.max_in_flight``
copies run at once: a copy that finds no free place is dropped, never queued, and a
running copy yields to live traffic before each of its stages (it waits while any live
request runs, and is dropped when the service stays busy for ``MAX_YIELD_S``), so a busy
service sheds shadow work first and live requests wait at most for one shadow stage.

Each pair is recorded: answer similarity (embeddings), citation overlap (Jaccard of
the cited passage ids), mode agreement, both latencies and both costs, with the
(PII-redacted) question and answers for the biggest disagreements.
:func:`shadow_report` summarises them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.contract import ShadowPolicy
from keel.pipeline.context import RequestContext
from keel.releases.registry import ReleaseRegistry
from keel.store import Database, upsert_statement

__all__ = [
    "MAX_YIELD_S",
    "ShadowDropped",
    "ShadowReport",
    "ShadowRunner",
    "citation_overlap",
    "shadow_report",
    "wait_until_idle",
]

MAX_YIELD_S = 10.0
"""Longest a shadow copy waits for the live traffic to pause before it is dropped."""


class ShadowDropped(Exception):
    """The service stayed busy: the shadow copy gave up its place."""


async def wait_until_idle(
    in_flight: Callable[[], int], *, poll_s: float = 0.005, max_wait_s: float = MAX_YIELD_S
) -> float:
    """Wait until ``in_flight()`` is zero; returns the seconds waited. Raises :class:`ShadowDropped` past the limit."""
    waited = 0.0
    while in_flight() > 0:
        if waited >= max_wait_s:
            raise ShadowDropped
        await asyncio.sleep(poll_s)
        waited += poll_s
    return waited


log = logging.getLogger(__name__)

Similarity = Callable[[str, str], Awaitable[float]]


def citation_overlap(a: set[str], b: set[str]) -> float:
    """Jaccard overlap of two sets of cited passage ids (1.0 when neither cites anything)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True, kw_only=True)
class _Primary:
    request_id: str
    mode: str | None
    answer: str
    citations: frozenset[str]
    latency_ms: float
    cost_usd: float
    release: str


class ShadowRunner:
    """Copies sampled live requests to an app's shadow candidate and records each pair."""

    def __init__(
        self,
        registry: ReleaseRegistry,
        policy: ShadowPolicy,
        *,
        db: Database,
        new_context: Callable[[RequestContext], RequestContext],
        run: Callable[[RequestContext], Awaitable[RequestContext]],
        similarity: Similarity,
        redact: Callable[[str], str],
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._policy = policy
        self._db = db
        self._new_context = new_context
        self._run = run
        self._similarity = similarity
        self._redact = redact
        self._rng = rng or random.Random()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        self.dropped = 0
        self.failed = 0

    def consider(self, ctx: RequestContext, status: int) -> None:
        """After a live request: maybe start its shadow copy (never waits, never raises to the caller)."""
        if ctx.shadow or status >= 400 or ctx.principal is None or ctx.release_override is not None:
            return
        state = self._registry.state(ctx.app.name)
        if state.stage != "shadow" or state.candidate is None or self._rng.random() >= state.share:
            return
        if self._in_flight >= self._policy.max_in_flight:
            self.dropped += 1
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        primary = _Primary(
            request_id=ctx.request_id,
            mode=ctx.mode,
            answer=ctx.answer,
            citations=frozenset(c.chunk_id for c in ctx.citations),
            latency_ms=ctx.trace.elapsed_ms(),
            cost_usd=ctx.cost_usd,
            release=ctx.release,
        )
        copy = self._new_context(ctx)
        copy.release_override = self._registry.release(ctx.app, state.candidate)
        copy.release_role = "shadow"
        copy.shadow = True
        self._in_flight += 1
        self.started += 1
        task = loop.create_task(self._shadow(primary, copy, state.candidate))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for shadow copies still running (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _shadow(self, primary: _Primary, copy: RequestContext, candidate: str) -> None:
        try:
            # Yield first, so the live response is on its way before any shadow work starts.
            await asyncio.sleep(0)
            error = None
            try:
                await self._run(copy)
            except ShadowDropped:
                self.dropped += 1
                return
            except Exception as exc:  # the candidate failing is a finding, not a crash
                error = getattr(exc, "code", type(exc).__name__)
            # The candidate's own time: its stages, without the pauses it made for live traffic.
            latency = sum(s.duration_ms for s in copy.trace.spans)
            similarity = (
                await self._similarity(primary.answer, copy.answer) if error is None and primary.answer else 0.0
            )
            cited = frozenset(c.chunk_id for c in copy.citations)
            assert copy.principal is not None
            data = {
                "tenant": copy.principal.tenant,
                "current": primary.release,
                "candidate": candidate,
                "mode_current": primary.mode,
                "mode_candidate": copy.mode if error is None else None,
                "mode_agree": error is None and primary.mode == copy.mode,
                "similarity": round(float(similarity), 4),
                "citation_overlap": round(citation_overlap(set(primary.citations), set(cited)), 4),
                "latency_current_ms": round(primary.latency_ms, 2),
                "latency_candidate_ms": round(latency, 2),
                "cost_current_usd": primary.cost_usd,
                "cost_candidate_usd": copy.cost_usd,
                "model_candidate": copy.model,
                "error": error,
                "question": self._redact(copy.question),
                "answer_current": self._redact(primary.answer),
                "answer_candidate": self._redact(copy.answer),
            }
            await asyncio.to_thread(self._store, primary.request_id, copy.app.name, primary.release, candidate, data)
        except Exception:
            self.failed += 1
            log.exception("shadow copy of %s failed", primary.request_id)
        finally:
            self._in_flight -= 1

    def _store(self, request_id: str, app: str, current: str, candidate: str, data: dict[str, Any]) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                upsert_statement(
                    "shadow_pairs",
                    ("request_id", "created_at", "app", "current", "candidate", "data_json"),
                    key=("request_id",),
                ),
                (request_id, time.time(), app, current, candidate, json.dumps(data)),
            )


@dataclass(frozen=True, kw_only=True)
class ShadowReport:
    """How a shadow candidate compares with what served the same requests."""

    app: str
    candidate: str
    pairs: int
    errors: int
    mode_agreement: float | None
    similarity_mean: float | None
    similarity_p10: float | None
    citation_overlap_mean: float | None
    latency_current_p50_ms: float | None
    latency_current_p95_ms: float | None
    latency_candidate_p50_ms: float | None
    latency_candidate_p95_ms: float | None
    cost_current_mean_usd: float | None
    cost_candidate_mean_usd: float | None
    disagreements: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def shadow_report(
    db: Database, *, app: str, candidate: str, since: float | None = None, worst: int = 10
) -> ShadowReport:
    """Summary of the recorded pairs of ``app`` and ``candidate``, with the ``worst`` disagreements."""
    rows = (
        db.connection()
        .execute(
            "SELECT request_id, created_at, data_json FROM shadow_pairs WHERE app = ? AND candidate = ?"
            " AND created_at >= ? ORDER BY created_at",
            (app, candidate, since or 0.0),
        )
        .fetchall()
    )
    pairs = [{"request_id": r["request_id"], "created_at": r["created_at"], **json.loads(r["data_json"])} for r in rows]
    ok = [p for p in pairs if p["error"] is None]

    def stat(values: list[float], q: float | None = None) -> float | None:
        if not values:
            return None
        return round(float(np.percentile(values, q) if q is not None else np.mean(values)), 6)

    def badness(pair: dict[str, Any]) -> tuple[int, float, float]:
        return (int(bool(pair["mode_agree"])), pair["similarity"], pair["citation_overlap"])

    return ShadowReport(
        app=app,
        candidate=candidate,
        pairs=len(pairs),
        errors=len(pairs) - len(ok),
        mode_agreement=stat([float(p["mode_agree"]) for p in pairs]),
        similarity_mean=stat([p["similarity"] for p in ok]),
        similarity_p10=stat([p["similarity"] for p in ok], 10),
        citation_overlap_mean=stat([p["citation_overlap"] for p in ok]),
        latency_current_p50_ms=stat([p["latency_current_ms"] for p in pairs], 50),
        latency_current_p95_ms=stat([p["latency_current_ms"] for p in pairs], 95),
        latency_candidate_p50_ms=stat([p["latency_candidate_ms"] for p in ok], 50),
        latency_candidate_p95_ms=stat([p["latency_candidate_ms"] for p in ok], 95),
        cost_current_mean_usd=stat([p["cost_current_usd"] for p in pairs]),
        cost_candidate_mean_usd=stat([p["cost_candidate_usd"] for p in ok]),
        disagreements=sorted(pairs, key=badness)[:worst],
    )
