"""Index quality: duplicates, sizes against the contract's chunking, ACL gaps, documents nobody retrieves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keel.contract import ChunkingSettings
from keel.errors import IndexVersionError
from keel.retrieval.quality import acl_gaps, near_duplicates, quality_report, size_stats
from keel.retrieval.versions import IndexStore
from keel.tracing import TraceRecord, TraceStore
from tests.support.database import database_at
from tests.unit.retrieval.builders import passage, publish

CHUNKING = ChunkingSettings(min_words=5, max_words=20)
BASE = (
    "Every employee is entitled to twenty seven days of paid annual leave per calendar year and"
    " may carry over up to five days"
)


def test_near_duplicates_are_found_above_the_threshold_and_confirmed_exactly() -> None:
    twin = BASE.replace("five days", "five working days")  # one word more: Jaccard 0.84
    far = "The vault code is rotated every quarter by the security team and stored offline."
    passages = [passage("a.md", BASE), passage("b.md", twin), passage("c.md", far), passage("d.md", BASE)]
    [pair] = near_duplicates(passages)
    assert {pair.a_path, pair.b_path} == {"a.md", "b.md"} and 0.8 <= pair.jaccard < 1.0
    assert near_duplicates(passages, threshold=0.9) == []


def test_size_stats_use_nearest_rank_and_bins_around_the_contract_bounds() -> None:
    stats = size_stats([3, 5, 8, 12, 20, 21, 40], CHUNKING)
    assert (stats.min, stats.p50, stats.p95, stats.max) == (3, 12, 40, 40)
    assert [(b.low, b.high, b.count) for b in stats.histogram] == [
        (0, 4, 1),
        (5, 8, 2),
        (9, 12, 1),
        (13, 16, 0),
        (17, 20, 1),
        (21, None, 2),
    ]


def test_acl_gaps_name_documents_readable_by_no_one_or_only_by_default_groups() -> None:
    passages = [
        passage("secret.md", "x", groups=()),
        passage("memo.md", "y", groups=("staff",)),
        passage("hr.md", "z", groups=("hr",)),
        passage("gone.md", "w", groups=("acme/staff",)),
    ]
    origins = {passages[1].doc_id: "default", passages[2].doc_id: "source:hr"}
    gaps = acl_gaps(passages, origins, ["staff"])
    assert [(g.path, g.acl) for g in gaps] == [("gone.md", "default"), ("memo.md", "default"), ("secret.md", "none")]


def _trace(store: TraceStore, request_id: str, when: float, chunk_ids: list[str]) -> None:
    store.save(
        TraceRecord(
            request_id=request_id,
            created_at=when,
            principal_id="p",
            tenant="t",
            app="default",
            endpoint="ask",
            mode="answer",
            status=200,
            latency_ms=5.0,
            data={
                "spans": [
                    {"name": "identity", "attributes": {}},
                    {"name": "retrieve", "attributes": {"hits": [{"chunk_id": c} for c in chunk_ids]}},
                ]
            },
        )
    )


def test_report_counts_duplicates_sizes_and_documents_not_retrieved_in_the_window(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index")
    leave, copy = passage("leave.md", BASE), passage("copy.md", BASE)
    pay, tiny = passage("pay.md", "Salary is paid monthly on the 25th."), passage("note.md", "See HR.")
    publish(store, [leave, pay, tiny, copy])
    db = database_at(tmp_path / "keel.db")
    traces = TraceStore(db)
    now = time.time()
    _trace(traces, "r-old", now - 40 * 86400, [pay.chunk_id])
    _trace(traces, "r-new", now - 3600, [leave.chunk_id])
    traces.flush()
    report = quality_report(store, chunking=CHUNKING, db=db, days=30, now=now)
    assert report.version == 1 and report.passages == 4 and report.documents == 4
    assert report.exact_duplicate_ratio == 0.25 and report.exact_duplicates == [[leave.chunk_id, copy.chunk_id]]
    assert report.tiny == [tiny.chunk_id] and report.oversized == [leave.chunk_id, copy.chunk_id]
    assert report.unretrieved is not None and report.unretrieved.requests == 1
    assert [path for _, path in report.unretrieved.documents] == ["copy.md", "note.md", "pay.md"]
    wider = quality_report(store, chunking=CHUNKING, db=db, days=60, now=now)
    assert wider.unretrieved is not None and [p for _, p in wider.unretrieved.documents] == ["copy.md", "note.md"]
    body = report.to_dict()
    assert body["duplicates"]["near_threshold"] == 0.8 and body["unretrieved"]["days"] == 30
    with pytest.raises(IndexVersionError):
        quality_report(store, chunking=CHUNKING, version=2)
    db.close()


def test_report_notes_when_no_request_was_traced(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index")
    publish(store, [passage("a.md", BASE)])
    db = database_at(tmp_path / "keel.db")
    report = quality_report(store, chunking=CHUNKING, db=db)
    assert report.unretrieved is not None and len(report.unretrieved.documents) == 1
    assert report.notes and "no request retrieved anything" in report.notes[0]
    db.close()
