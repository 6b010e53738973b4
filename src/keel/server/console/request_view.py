"""The Requests pages' data: who may see which request, the list's filters, and one request laid out.

Admins and reviewers see their tenant's requests; any other key sees only its own.
Free text (question, answer, comments, decisions) is passed through PII redaction
again when it is shown. Retrieved chunks and citations appear only when the viewer's
groups may read their passage (groups as the index has them now): chunk ids, titles,
scores and groups, never chunk text, except the snippet of a citation the viewer may read;
an answer that rests on a passage the viewer may not read is withheld.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from keel.errors import NotReady
from keel.identity import Principal
from keel.pipeline.citations import snippet
from keel.pipeline.context import Mode
from keel.policy.pii import redact
from keel.retrieval.snapshot import IndexSnapshot
from keel.retrieval.versions import IndexStore
from keel.store import Database
from keel.tracing import TraceRecord
from keel.tracing.query import TraceQuery

__all__ = [
    "FILTERS",
    "MODES",
    "ChunkView",
    "CitationView",
    "FeedbackView",
    "RequestDetail",
    "build_query",
    "may_view",
    "request_detail",
    "sees_tenant",
]

MODES: tuple[str, ...] = (*get_args(Mode), "error")
"""The modes a request can end in (``error`` when it failed before deciding)."""

FILTERS = ("app", "mode", "principal", "release", "since", "until", "degraded", "guard")
"""The list's filter fields, as query parameters."""

_UNITS = {"m": 60, "h": 3600, "d": 86400}


def sees_tenant(principal: Principal) -> bool:
    """Whether ``principal`` sees its whole tenant's requests (admins and reviewers) or only its own."""
    return bool(principal.roles & {"admin", "reviewer"})


def may_view(record: TraceRecord, principal: Principal) -> bool:
    """Whether ``principal`` may see ``record``: its own, or (admin, reviewer) one of its tenant's."""
    if record.tenant != principal.tenant:
        return False
    return record.principal_id == principal.id or sees_tenant(principal)


def parse_when(text: str, *, now: float, end: bool = False) -> float:
    """A time filter: ``30m``/``24h``/``7d`` ago, or a UTC date or date-time; a date as ``end`` means its end."""
    value = text.strip()
    if len(value) >= 2 and value[-1] in _UNITS and value[:-1].isdigit():
        return now - int(value[:-1]) * _UNITS[value[-1]]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2025-01-31), a date-time or an age like 24h or 7d.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(value) == 10:  # a bare date: until the end of that day
        moment += timedelta(days=1)
    return moment.timestamp()


def build_query(
    params: Mapping[str, str],
    viewer: Principal,
    *,
    before: str | None = None,
    limit: int = 50,
    now: float | None = None,
) -> tuple[TraceQuery, dict[str, str], list[str]]:
    """The query of the list's filters for ``viewer``, the form's values, and messages for filters that do not parse.

    A viewer who sees only its own requests always has its own id as the principal filter.
    """
    now = time.time() if now is None else now
    form = {name: params.get(name, "").strip() for name in FILTERS}
    errors: list[str] = []
    if not sees_tenant(viewer):
        form["principal"] = viewer.id
    since = until = None
    for name in ("since", "until"):
        if form[name]:
            try:
                moment = parse_when(form[name], now=now, end=name == "until")
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
                continue
            since, until = (moment, until) if name == "since" else (since, moment)
    degraded = {"yes": True, "no": False}.get(form["degraded"])
    query = TraceQuery(
        tenant=viewer.tenant,
        principal_id=form["principal"] or None,
        app=form["app"] or None,
        mode=form["mode"] or None,
        release=form["release"] or None,
        since=since,
        until=until,
        degraded=degraded,
        guard_verdict=form["guard"] or None,
        before=before or None,
        limit=limit,
    )
    return query, form, errors


@dataclass(frozen=True, kw_only=True)
class ChunkView:
    """A retrieved chunk the viewer may read: ids, title, scores and ranks, ACL groups; no text."""

    chunk_id: str
    doc_id: str
    title: str
    source: str
    groups: tuple[str, ...]
    fused_rank: int | None
    fused_score: float | None
    lexical_rank: int | None
    lexical_score: float | None
    dense_rank: int | None
    dense_score: float | None
    selected: bool
    relevant: bool | None


@dataclass(frozen=True, kw_only=True)
class CitationView:
    """A citation the viewer may read, with the snippet the caller was shown."""

    number: int
    chunk_id: str
    title: str
    source: str
    snippet: str


@dataclass(frozen=True, kw_only=True)
class FeedbackView:
    """A rating given on the request, with its redacted comment."""

    created_at: float
    rating: str
    comment: str
    corrected: bool
    by: str


@dataclass(frozen=True, kw_only=True)
class RequestDetail:
    """Everything the request page shows, already filtered for the viewer and redacted."""

    request_id: str
    created_at: float
    principal_id: str
    app: str
    endpoint: str
    mode: str
    status: int
    error: str | None
    release: str
    prompt: str | None
    index_version: int | None
    model: str | None
    trace_id: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    cache: str | None
    tags: tuple[str, ...]
    question: str
    answer: str
    """Empty, and ``answer_withheld``, when it rests on passages the viewer may not read."""
    answer_withheld: bool
    spans: list[dict[str, Any]] = field(default_factory=list)
    """Stages and their model calls in order, each with ``depth`` (0 stage, 1 model call)."""
    route: dict[str, Any] | None = None
    guard_verdicts: dict[str, str] = field(default_factory=dict)
    degraded: list[dict[str, str]] = field(default_factory=list)
    chunks: list[ChunkView] = field(default_factory=list)
    hidden_chunks: int = 0
    citations: list[CitationView] = field(default_factory=list)
    hidden_citations: int = 0
    feedback: list[FeedbackView] = field(default_factory=list)


def _text(value: object) -> str:
    return redact(str(value)) if value else ""


def _flatten(spans: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for span in spans:
        out.append(
            {
                "name": ("› " if depth else "") + str(span.get("name", "")),
                "depth": depth,
                "status": span.get("status", "ok"),
                "decision": _text(span.get("decision")),
                "start_ms": float(span.get("start_ms") or 0.0),
                "duration_ms": float(span.get("duration_ms") or 0.0),
            }
        )
        out.extend(_flatten(list(span.get("children") or []), depth + 1))
    return out


class _Passages:
    """The passages of the request's index version, looked up once each."""

    def __init__(self, index: IndexStore | None, version: int | None) -> None:
        self._snapshot: IndexSnapshot | None = None
        if index is not None and version is not None:
            try:
                self._snapshot = index.snapshot(version)
            except NotReady:  # the version was pruned: fall back to the groups the trace recorded
                self._snapshot = None

    def groups_and_text(self, chunk_id: str, recorded: object) -> tuple[tuple[str, ...], str | None]:
        passage = self._snapshot.passage_by_id(chunk_id) if self._snapshot is not None else None
        if passage is not None:
            return passage.groups, passage.text
        if isinstance(recorded, list):
            return tuple(str(g) for g in recorded), None
        return (), None


def _opt_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _opt_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def request_detail(record: TraceRecord, viewer: Principal, *, db: Database, index: IndexStore | None) -> RequestDetail:
    """The request page of ``record`` as ``viewer`` may see it (check :func:`may_view` first)."""
    data = record.data
    request: dict[str, Any] = data.get("request") or {}
    response: dict[str, Any] = data.get("response") or {}
    spans: list[dict[str, Any]] = list(data.get("spans") or [])
    readable = viewer.acl_groups
    version = _opt_int(response.get("index_version"))
    passages = _Passages(index, version)
    retrieve = next((s for s in spans if s.get("name") == "retrieve"), None)
    hits: list[dict[str, Any]] = list((retrieve or {}).get("attributes", {}).get("hits") or [])
    chunks: list[ChunkView] = []
    for hit in hits:
        groups, _ = passages.groups_and_text(str(hit.get("chunk_id")), hit.get("groups"))
        if not set(groups) & readable:
            continue
        chunks.append(
            ChunkView(
                chunk_id=str(hit.get("chunk_id")),
                doc_id=str(hit.get("doc_id", "")),
                title=_text(hit.get("title")),
                source=str(hit.get("source", "")),
                groups=groups,
                fused_rank=_opt_int(hit.get("fused_rank")),
                fused_score=_opt_float(hit.get("fused_score")),
                lexical_rank=_opt_int(hit.get("lexical_rank")),
                lexical_score=_opt_float(hit.get("lexical_score")),
                dense_rank=_opt_int(hit.get("dense_rank")),
                dense_score=_opt_float(hit.get("dense_score")),
                selected=bool(hit.get("selected")),
                relevant=hit.get("relevant") if isinstance(hit.get("relevant"), bool) else None,
            )
        )
    recorded_groups = {str(h.get("chunk_id")): h.get("groups") for h in hits}
    citations: list[CitationView] = []
    cited: list[dict[str, Any]] = list(response.get("citations") or [])
    for citation in cited:
        chunk_id = str(citation.get("chunk_id"))
        groups, text = passages.groups_and_text(chunk_id, recorded_groups.get(chunk_id))
        if not set(groups) & readable:
            continue
        citations.append(
            CitationView(
                number=_opt_int(citation.get("number")) or 0,
                chunk_id=chunk_id,
                title=_text(citation.get("title")),
                source=str(citation.get("source", "")),
                snippet=redact(snippet(text)) if text else "",
            )
        )
    withheld = len(citations) < len(cited) or any(
        h.get("selected") and not any(c.chunk_id == h.get("chunk_id") for c in chunks) for h in hits
    )
    route = response.get("route")
    usage: dict[str, Any] = response.get("usage") or {}
    verdicts: dict[str, Any] = response.get("guard_verdicts") or {}
    return RequestDetail(
        request_id=record.request_id,
        created_at=record.created_at,
        principal_id=record.principal_id,
        app=record.app,
        endpoint=record.endpoint,
        mode=record.mode,
        status=record.status,
        error=str(data.get("attributes", {}).get("error") or "") or None,
        release=record.release,
        prompt=str(response["prompt"]) if response.get("prompt") else None,
        index_version=version,
        model=str(response["model"]) if response.get("model") else None,
        trace_id=record.trace_id,
        latency_ms=record.latency_ms,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cost_usd=_opt_float(response.get("cost_usd")),
        cache=str(response["cache"]) if response.get("cache") else None,
        tags=record.tags,
        question=_text(request.get("question")),
        answer="" if withheld else _text(response.get("answer")),
        answer_withheld=withheld,
        spans=_flatten(spans),
        route=(
            {
                "model": route.get("model"),
                "reason": _text(route.get("reason")),
                "candidates": [str(c) for c in route.get("candidates") or []],
                "skipped": [
                    {"model": s.get("model"), "reason": _text(s.get("reason"))} for s in route.get("skipped") or []
                ],
            }
            if isinstance(route, dict)
            else None
        ),
        guard_verdicts={str(k): str(v) for k, v in verdicts.items()},
        degraded=[
            {"component": str(d.get("component", "")), "reason": _text(d.get("reason"))}
            for d in response.get("degraded") or []
        ],
        chunks=chunks,
        hidden_chunks=len(hits) - len(chunks),
        citations=citations,
        hidden_citations=len(cited) - len(citations),
        feedback=_feedback(db, record, viewer),
    )


def _feedback(db: Database, record: TraceRecord, viewer: Principal) -> list[FeedbackView]:
    rows = (
        db.connection()
        .execute(
            "SELECT created_at, rating, comment, correction IS NOT NULL AS corrected, principal_id FROM feedback"
            " WHERE request_id = ? AND tenant = ? ORDER BY created_at",
            (record.request_id, record.tenant),
        )
        .fetchall()
    )
    tenant_wide = sees_tenant(viewer)
    return [
        FeedbackView(
            created_at=r["created_at"],
            rating=r["rating"],
            comment=_text(r["comment"]),
            corrected=bool(r["corrected"]),
            by=r["principal_id"] if tenant_wide or r["principal_id"] == viewer.id else "a reviewer",
        )
        for r in rows
    ]
