"""Persisted traces, written off the response path.

``save`` queues a record and returns at once; a writer thread commits queued
records in batches. A trace that is queued but not yet committed is still found by
``get``, and ``close`` drains the queue so nothing is lost on shutdown.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from keel.store import Database, upsert_statement
from keel.store.writer import BackgroundWriter

__all__ = ["TraceRecord", "TraceStore"]

_INSERT_TRACE = upsert_statement(
    "traces",
    (
        "request_id",
        "created_at",
        "principal_id",
        "tenant",
        "app",
        "endpoint",
        "mode",
        "status",
        "latency_ms",
        "data_json",
        "release",
        "tags_json",
        "trace_id",
    ),
    key=("request_id",),
)


@dataclass(frozen=True, kw_only=True)
class TraceRecord:
    """A finished request's trace with the fields it is found by."""

    request_id: str
    created_at: float
    principal_id: str
    tenant: str
    app: str
    endpoint: str
    mode: str
    status: int
    latency_ms: float
    data: dict[str, Any]
    release: str = ""
    tags: tuple[str, ...] = ()
    trace_id: str = ""

    def summary(self) -> dict[str, Any]:
        """The listing form, without the spans."""
        return {
            "request_id": self.request_id,
            "created_at": self.created_at,
            "principal_id": self.principal_id,
            "tenant": self.tenant,
            "app": self.app,
            "endpoint": self.endpoint,
            "mode": self.mode,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 1),
            "release": self.release,
            "tags": list(self.tags),
            "trace_id": self.trace_id,
        }


class TraceStore:
    """Traces in the project database."""

    def __init__(self, db: Database, *, batch_size: int = 64) -> None:
        self._db = db
        self._pending: dict[str, TraceRecord] = {}
        self._pending_lock = threading.Lock()
        self._writer: BackgroundWriter[TraceRecord] = BackgroundWriter(
            self._commit, name="keel-trace-writer", batch_size=batch_size, on_done=self._forget
        )

    def save(self, record: TraceRecord) -> None:
        """Queue ``record`` for writing; returns immediately."""
        with self._pending_lock:
            self._pending[record.request_id] = record
        self._writer.submit(record)

    def get(self, request_id: str) -> TraceRecord | None:
        """The trace of ``request_id``, committed or still queued."""
        with self._pending_lock:
            pending = self._pending.get(request_id)
        if pending is not None:
            return pending
        row = self._db.connection().execute("SELECT * FROM traces WHERE request_id = ?", (request_id,)).fetchone()
        return _from_row(row) if row is not None else None

    def recent(
        self, *, tenant: str | None = None, principal_id: str | None = None, limit: int = 50
    ) -> list[TraceRecord]:
        """Recent traces, newest first, optionally of one tenant or principal."""
        self.flush()
        sql = "SELECT * FROM traces"
        clauses, args = [], []
        if tenant is not None:
            clauses.append("tenant = ?")
            args.append(tenant)
        if principal_id is not None:
            clauses.append("principal_id = ?")
            args.append(principal_id)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC LIMIT ?"
        rows = self._db.connection().execute(sql, (*args, limit)).fetchall()
        return [_from_row(r) for r in rows]

    def flush(self) -> None:
        """Block until every queued record is committed."""
        self._writer.flush()

    def close(self) -> None:
        """Commit everything queued and stop the writer."""
        self._writer.close()

    def _forget(self, records: list[TraceRecord]) -> None:
        with self._pending_lock:
            for r in records:
                self._pending.pop(r.request_id, None)

    def _commit(self, records: list[TraceRecord]) -> None:
        with self._db.transaction() as conn:
            conn.executemany(
                _INSERT_TRACE,
                [
                    (
                        r.request_id,
                        r.created_at,
                        r.principal_id,
                        r.tenant,
                        r.app,
                        r.endpoint,
                        r.mode,
                        r.status,
                        r.latency_ms,
                        _json_text(r.data),
                        r.release,
                        _json_text(list(r.tags)),
                        r.trace_id,
                    )
                    for r in records
                ],
            )


def _json_text(value: Any) -> str:
    """``value`` as JSON text that PostgreSQL's ``jsonb`` accepts: a NUL character in a string becomes U+FFFD.

    ``jsonb`` refuses ``\\u0000``, and one such row would make every query that casts
    ``data_json`` fail; so NUL is replaced here, as it is in plain text columns.
    """
    text = json.dumps(value, default=str)
    if "\\u0000" in text:
        text = json.dumps(_without_nul(value), default=str)
    return text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(str(k)): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def _from_row(row: Any) -> TraceRecord:
    return TraceRecord(
        request_id=row["request_id"],
        created_at=row["created_at"],
        principal_id=row["principal_id"],
        tenant=row["tenant"],
        app=row["app"],
        endpoint=row["endpoint"],
        mode=row["mode"],
        status=row["status"],
        latency_ms=row["latency_ms"],
        data=json.loads(row["data_json"]),
        release=row["release"],
        tags=tuple(json.loads(row["tags_json"])),
        trace_id=row["trace_id"],
    )
