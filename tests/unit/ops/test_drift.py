"""Drift between a reference and a current window: topics (real embeddings), scores, lengths, modes, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.contract import DriftSettings
from keel.ops.drift import compute_drift, kl_divergence
from keel.store import Database

NOW = 1_800_000_000.0
DAY = 86400.0
SETTINGS = DriftSettings(reference_days=7, current_days=1, threshold=0.05, topics=4, min_requests=20)
HR = [
    "How many days of annual leave do I get?",
    "When is pay day this month?",
    "How do I claim travel expenses?",
    "What is the parental leave policy?",
    "Can I carry over unused holiday?",
]
IT = [
    "My laptop will not connect to the VPN",
    "How do I reset my multi-factor authentication token?",
    "The printer on floor three is jammed",
    "Which version of the database driver should I install?",
    "How do I request a second monitor?",
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "k.db")
    yield database
    database.close()


def _add(db: Database, at: float, questions: list[str], *, mode: str = "answer", score: float = 0.7) -> None:
    rows = []
    for i, question in enumerate(questions):
        data: dict[str, Any] = {
            "request": {"question": question},
            "response": {"answer": "Twenty-seven days, see the policy. [1]" if mode == "answer" else ""},
            "spans": [{"name": "retrieve", "attributes": {"hits": [{"dense_score": score}]}}],
        }
        rows.append((f"r-{at}-{i}", at + i, mode, json.dumps(data)))
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status, latency_ms,"
            " data_json) VALUES (?, ?, 'p', 't', 'default', 'ask', ?, 200, 5.0, ?)",
            rows,
        )


def test_kl_divergence_is_zero_for_equal_histograms_and_finite_for_empty_bins() -> None:
    assert kl_divergence([5, 5, 0], [5, 5, 0]) == pytest.approx(0.0)
    assert 0 < kl_divergence([0, 0, 10], [10, 0, 0]) < 10


def test_the_same_traffic_does_not_drift(db: Database, embedder: Any) -> None:
    _add(db, NOW - 3 * DAY, HR * 6)
    _add(db, NOW - 0.5 * DAY, HR * 6)
    report = compute_drift(db, SETTINGS, embedder=embedder, now=NOW)
    assert report.enough_data and report.reference_requests == 30 and report.current_requests == 30
    assert report.drifted == []
    assert set(report.divergence) == {"mode_mix", "refusal_rate", "answer_length", "top_score", "topics"}


def test_new_topics_refusals_and_weaker_retrieval_drift(db: Database, embedder: Any) -> None:
    _add(db, NOW - 3 * DAY, HR * 6)
    _add(db, NOW - 0.5 * DAY, IT * 4, mode="refused", score=0.25)
    _add(db, NOW - 0.4 * DAY, HR * 2)
    report = compute_drift(db, SETTINGS, embedder=embedder, now=NOW)
    assert {"topics", "mode_mix", "refusal_rate", "top_score", "answer_length"} <= set(report.drifted)
    assert report.divergence["topics"] > SETTINGS.threshold


def test_too_little_traffic_gives_no_verdict(db: Database) -> None:
    _add(db, NOW - 3 * DAY, HR)
    _add(db, NOW - 0.5 * DAY, IT, mode="refused")
    report = compute_drift(db, SETTINGS, now=NOW)
    assert not report.enough_data and report.drifted == []
    assert report.divergence["mode_mix"] > SETTINGS.threshold
