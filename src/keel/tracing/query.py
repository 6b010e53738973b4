"""Finding recorded requests: one tenant's traces filtered in SQL, newest first, a page at a time.

Every filter is a bound parameter; the degraded flag and guard verdicts are read from
the trace JSON with SQLite's ``json_extract``/``json_each``. Pages follow a ``before``
cursor (the last row's time and request id), so a page never repeats or skips a row
when new requests arrive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keel.store import Database
from keel.store.json_sql import json_array_length, json_json, json_number

__all__ = ["TracePage", "TraceQuery", "TraceRow", "search_traces"]

MAX_LIMIT = 500


@dataclass(frozen=True, kw_only=True)
class TraceQuery:
    """Which requests to list. ``tenant`` is required; ``principal_id`` limits to one asker.

    ``guard_verdict`` matches requests with any guard verdict starting with it
    (``blocked`` finds ``blocked:injection`` and ``blocked:topic:pay``); ``since`` and
    ``until`` are Unix times (``until`` exclusive); ``before`` is a cursor from
    :attr:`TracePage.next_before`.
    """

    tenant: str
    principal_id: str | None = None
    app: str | None = None
    mode: str | None = None
    release: str | None = None
    since: float | None = None
    until: float | None = None
    degraded: bool | None = None
    guard_verdict: str | None = None
    before: str | None = None
    limit: int = 50


@dataclass(frozen=True, kw_only=True)
class TraceRow:
    """One request in a listing: its columns and a few figures from its trace."""

    request_id: str
    created_at: float
    principal_id: str
    app: str
    endpoint: str
    mode: str
    status: int
    latency_ms: float
    release: str
    tags: tuple[str, ...]
    cost_usd: float | None
    degraded: bool
    guard_verdicts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TracePage:
    """A page of rows and the cursor of the next (older) page, if there is one."""

    rows: list[TraceRow]
    next_before: str | None


def cursor_of(row: TraceRow) -> str:
    """The ``before`` cursor that continues after ``row``."""
    return f"{row.created_at!r}~{row.request_id}"


def _parse_cursor(cursor: str) -> tuple[float, str] | None:
    created, sep, request_id = cursor.partition("~")
    if not sep:
        return None
    try:
        return float(created), request_id
    except ValueError:
        return None


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_traces(db: Database, query: TraceQuery) -> TracePage:
    """The requests matching ``query``, newest first; a cursor that does not parse gives an empty page."""
    clauses = ["tenant = ?"]
    args: list[Any] = [query.tenant]
    for column, value in (
        ("principal_id", query.principal_id),
        ("app", query.app),
        ("mode", query.mode),
        ("release", query.release),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")  # column names are the fixed ones above
            args.append(value)
    if query.since is not None:
        clauses.append("created_at >= ?")
        args.append(query.since)
    if query.until is not None:
        clauses.append("created_at < ?")
        args.append(query.until)
    dialect = db.dialect
    degraded = f"COALESCE({json_array_length(dialect, 'data_json', 'response.degraded')}, 0)"
    if query.degraded is not None:
        clauses.append(f"(CASE WHEN {degraded} > 0 THEN 1 ELSE 0 END) = ?")
        args.append(int(query.degraded))
    if query.guard_verdict:
        if dialect == "postgresql":
            verdicts = (
                "jsonb_each_text(CASE WHEN jsonb_typeof(data_json::jsonb #> '{response,guard_verdicts}') = 'object'"
                " THEN data_json::jsonb #> '{response,guard_verdicts}' ELSE '{}'::jsonb END)"
            )
        else:
            verdicts = "json_each(data_json, '$.response.guard_verdicts')"
        clauses.append(f"EXISTS (SELECT 1 FROM {verdicts} AS v WHERE v.value LIKE ? ESCAPE '\\')")
        args.append(_like_prefix(query.guard_verdict))
    if query.before is not None:
        position = _parse_cursor(query.before)
        if position is None:
            return TracePage(rows=[], next_before=None)
        clauses.append("(created_at < ? OR (created_at = ? AND request_id < ?))")
        args.extend([position[0], position[0], position[1]])
    limit = max(1, min(query.limit, MAX_LIMIT))
    sql = (
        "SELECT request_id, created_at, principal_id, app, endpoint, mode, status, latency_ms, release, tags_json,"
        f" {json_number(dialect, 'data_json', 'response.cost_usd')} AS cost_usd,"
        f" {degraded} AS degraded,"
        f" {json_json(dialect, 'data_json', 'response.guard_verdicts')} AS verdicts"
        " FROM traces WHERE " + " AND ".join(clauses) + " ORDER BY created_at DESC, request_id DESC LIMIT ?"
    )
    found = db.connection().execute(sql, (*args, limit + 1)).fetchall()
    rows = [_row(r) for r in found[:limit]]
    return TracePage(rows=rows, next_before=cursor_of(rows[-1]) if len(found) > limit else None)


def _row(row: Any) -> TraceRow:
    verdicts = json.loads(row["verdicts"]) if row["verdicts"] else {}
    return TraceRow(
        request_id=row["request_id"],
        created_at=row["created_at"],
        principal_id=row["principal_id"],
        app=row["app"],
        endpoint=row["endpoint"],
        mode=row["mode"],
        status=row["status"],
        latency_ms=row["latency_ms"],
        release=row["release"],
        tags=tuple(json.loads(row["tags_json"])),
        cost_usd=row["cost_usd"],
        degraded=bool(row["degraded"]),
        guard_verdicts={str(k): str(v) for k, v in verdicts.items()} if isinstance(verdicts, dict) else {},
    )
