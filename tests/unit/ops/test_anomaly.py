"""Anomalies: the last hour against a robust median/MAD baseline of the hours before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.ops.anomaly import detect_anomalies
from keel.store import Database
from tests.support.database import database_at

HOUR = 3600.0
NOW = 1_800_000_000.0 - (1_800_000_000.0 % HOUR) + 60  # one minute into an hour


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = database_at(tmp_path / "k.db")
    yield database
    database.close()


def _hour(db: Database, hours_ago: int, *, latency: float, cost: float, tokens: int, refused: int, n: int = 20) -> None:
    start = NOW - (NOW % HOUR) - hours_ago * HOUR
    rows = []
    for i in range(n):
        mode = "refused" if i < refused else "answer"
        data = {"response": {"cost_usd": cost, "usage": {"prompt_tokens": tokens, "completion_tokens": 0}}}
        rows.append((f"r{hours_ago}-{i}", start + i * 60, mode, latency + (i % 5), json.dumps(data)))
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO traces (request_id, created_at, principal_id, tenant, app, endpoint, mode, status, latency_ms,"
            " data_json) VALUES (?, ?, 'p', 't', 'default', 'ask', ?, 200, ?, ?)",
            rows,
        )


def test_a_spike_in_the_last_hour_is_an_anomaly_and_steady_signals_are_not(db: Database) -> None:
    for h in range(2, 20):
        _hour(db, h, latency=100.0 + h % 3 * 5, cost=0.001, tokens=300 + h % 4 * 10, refused=1)
    _hour(db, 1, latency=900.0, cost=0.001, tokens=310, refused=9)
    found = {a.signal: a for a in detect_anomalies(db, now=NOW)}
    assert found["latency_p95_ms"].anomalous and found["latency_p95_ms"].value > 800
    assert found["refusal_rate"].anomalous
    assert not found["cost_per_request_usd"].anomalous
    assert not found["tokens_per_request"].anomalous


def test_one_old_outlier_does_not_hide_the_next_spike(db: Database) -> None:
    for h in range(2, 20):
        _hour(db, h, latency=2000.0 if h == 10 else 100.0 + h % 3 * 5, cost=0.001, tokens=300, refused=1)
    _hour(db, 1, latency=1500.0, cost=0.001, tokens=300, refused=1)
    found = {a.signal: a for a in detect_anomalies(db, now=NOW)}
    assert found["latency_p95_ms"].anomalous


def test_without_enough_history_there_is_no_verdict(db: Database) -> None:
    _hour(db, 2, latency=100.0, cost=0.001, tokens=300, refused=1)
    _hour(db, 1, latency=900.0, cost=0.001, tokens=300, refused=1)
    assert all(not a.anomalous for a in detect_anomalies(db, now=NOW))
    assert detect_anomalies(db, now=NOW + 3 * HOUR) == []
