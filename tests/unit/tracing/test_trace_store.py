"""Traces with awkward content are stored so that every trace query still works on both backends."""

from __future__ import annotations

import time
from pathlib import Path

from keel.tracing import TraceRecord, TraceStore
from keel.tracing.query import TraceQuery, search_traces
from tests.support.database import database_at


def record(rid: str, question: str, *, verdict: str = "allowed") -> TraceRecord:
    return TraceRecord(
        request_id=rid,
        created_at=time.time(),
        principal_id="ana",
        tenant="acme",
        app="gateway",
        endpoint="chat",
        mode="answer",
        status=200,
        latency_ms=3.0,
        data={
            "request": {"question": question},
            "response": {"cost_usd": 0.001, "degraded": [], "guard_verdicts": {"input": verdict}},
            "spans": [],
        },
        tags=("a\x00b",),
    )


def test_a_nul_character_from_a_client_does_not_break_trace_queries(tmp_path: Path) -> None:
    db = database_at(tmp_path / "k.db")
    store = TraceStore(db)
    store.save(record("req_nul", "leave\x00 days?", verdict="blocked:inj\x00ection"))
    store.save(record("req_ok", "How many days of leave?"))
    store.flush()
    page = search_traces(db, TraceQuery(tenant="acme", guard_verdict="blocked"))
    assert [r.request_id for r in page.rows] == ["req_nul"]
    assert {r.request_id for r in search_traces(db, TraceQuery(tenant="acme", degraded=False)).rows} == {
        "req_nul",
        "req_ok",
    }
    stored = store.recent(tenant="acme")
    by_id = {r.request_id: r for r in stored}
    assert by_id["req_nul"].data["request"]["question"] == "leave\ufffd days?"
    assert by_id["req_nul"].tags == ("a\ufffdb",)
    assert by_id["req_ok"].data["request"]["question"] == "How many days of leave?"
    store.close()
