"""keel export finetune: approved answers and corrections, redacted, de-duplicated, with a manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.ops.finetune import export_finetune
from keel.policy.pii import redact
from keel.store import Database
from tests.support.database import database_at


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = database_at(tmp_path / "k.db")
    yield database
    database.close()


def _trace(db: Database, rid: str, question: str, answer: str, mode: str = "answer") -> None:
    data = {
        "request": {"question": question},
        "response": {"mode": mode, "answer": answer, "model": "smollm2-135m", "prompt": "answer@2"},
    }
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status, latency_ms,"
            " data_json) VALUES (?, 1.0, 'p', 'acme', 'default', 'ask', ?, 200, 10.0, ?)",
            (rid, mode, json.dumps(data)),
        )


def _feedback(db: Database, rid: str, rating: str, correction: str | None = None, at: float = 10.0) -> None:
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO feedback (feedback_id, request_id, created_at, tenant, principal_id, app, rating, correction)"
            " VALUES (?, ?, ?, 'acme', 'p', 'default', ?, ?)",
            (f"fb_{rid}_{at}", rid, at, rating, correction),
        )


def test_approved_answers_and_corrections_become_chat_examples(db: Database, tmp_path: Path) -> None:
    _trace(db, "r1", "How many leave days?", "27 days [1].")
    _trace(db, "r2", "When is pay day?", "Every day.")
    _trace(db, "r3", "Who approves expenses?", "", mode="no_answer")
    _trace(db, "r4", "Where is the Leeds office?", "Somewhere.")
    _feedback(db, "r1", "up", at=10.0)
    _feedback(db, "r1", "up", at=11.0)  # the same example twice: kept once
    _feedback(db, "r2", "down", correction="On the 25th; call +44 20 7946 0958 with questions.", at=12.0)
    _feedback(db, "r3", "up", at=13.0)  # approved, but there was no answer: skipped
    _feedback(db, "r4", "down", at=14.0)  # a bare thumbs down teaches nothing: not taken
    out = tmp_path / "export"
    manifest = export_finetune(db, out, redact=redact)
    lines = (out / "finetune.jsonl").read_text(encoding="utf-8").splitlines()
    examples = [json.loads(line) for line in lines]
    assert [e["messages"][0]["content"] for e in examples] == ["How many leave days?", "When is pay day?"]
    assert examples[1]["messages"][1]["content"].startswith("On the 25th")
    assert "7946 0958" not in lines[1] and "[REDACTED:phone]" in lines[1]
    assert [e["metadata"]["source"] for e in examples] == ["approved", "correction"]
    assert (manifest.examples, manifest.from_approvals, manifest.from_corrections) == (2, 1, 1)
    assert (manifest.duplicates_dropped, manifest.skipped) == (1, 1)
    stored = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert stored["time_range"] == [10.0, 12.0] and stored["prompts"] == ["answer@2"]
    assert stored["sha256"] == hashlib.sha256((out / "finetune.jsonl").read_bytes()).hexdigest()


def test_since_limits_the_export(db: Database, tmp_path: Path) -> None:
    _trace(db, "r1", "How many leave days?", "27 days [1].")
    _feedback(db, "r1", "up", at=10.0)
    assert export_finetune(db, tmp_path / "x", redact=redact, since=11.0).examples == 0
    assert (tmp_path / "x" / "finetune.jsonl").read_text(encoding="utf-8") == ""
