"""Anomalies in latency, cost, tokens and refusals against a robust rolling baseline.

Recorded requests are cut into buckets (an hour by default). For each signal, the
latest complete bucket is compared with the median of the buckets before it (a
rolling window); its distance is measured in robust standard deviations,
``1.4826 * MAD``, so one earlier outlier cannot hide the next. A bucket whose score
exceeds the threshold, on a signal with enough baseline buckets, is an anomaly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.store import Database

__all__ = ["SIGNALS", "Anomaly", "detect_anomalies"]

SIGNALS = ("latency_p95_ms", "cost_per_request_usd", "tokens_per_request", "refusal_rate")
MAD_SCALE = 1.4826


@dataclass(frozen=True, kw_only=True)
class Anomaly:
    """One signal's latest bucket against its baseline."""

    signal: str
    value: float
    baseline: float
    score: float
    anomalous: bool
    bucket_start: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "signal": self.signal,
            "value": round(self.value, 6),
            "baseline": round(self.baseline, 6),
            "score": round(self.score, 2) if np.isfinite(self.score) else None,
            "anomalous": self.anomalous,
            "bucket_start": self.bucket_start,
        }


def _bucket_values(rows: list[tuple[float, str, float, str]]) -> dict[str, float]:
    latencies = [r[2] for r in rows]
    costs, tokens = [], []
    for _, _, _, data_json in rows:
        response = json.loads(data_json).get("response", {})
        usage = response.get("usage") or {}
        costs.append(float(response.get("cost_usd") or 0.0))
        tokens.append(float((usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)))
    return {
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        "cost_per_request_usd": float(np.mean(costs)),
        "tokens_per_request": float(np.mean(tokens)),
        "refusal_rate": sum(1 for r in rows if r[1] == "refused") / len(rows),
    }


def detect_anomalies(
    db: Database,
    *,
    bucket_s: float = 3600.0,
    window: int = 24,
    threshold: float = 5.0,
    min_baseline: int = 6,
    now: float | None = None,
) -> list[Anomaly]:
    """The latest complete bucket of each signal against the ``window`` buckets before it."""
    now = time.time() if now is None else now
    last_end = now - (now % bucket_s)
    start = last_end - (window + 1) * bucket_s
    rows = (
        db.connection()
        .execute(
            "SELECT created_at, mode, latency_ms, data_json FROM traces WHERE created_at >= ? AND created_at < ?"
            " AND status < 500",
            (start, last_end),
        )
        .fetchall()
    )
    buckets: dict[int, list[tuple[float, str, float, str]]] = {}
    for row in rows:
        index = int((row[0] - start) // bucket_s)
        buckets.setdefault(index, []).append((row[0], row[1], row[2], row[3]))
    latest = buckets.get(window)
    if not latest:
        return []
    current = _bucket_values(latest)
    history = [_bucket_values(buckets[i]) for i in range(window) if buckets.get(i)]
    out = []
    for signal in SIGNALS:
        baseline_values = np.array([h[signal] for h in history], dtype=np.float64)
        value = current[signal]
        if len(baseline_values) < min_baseline:
            out.append(
                Anomaly(signal=signal, value=value, baseline=float("nan"), score=float("nan"), anomalous=False,
                        bucket_start=last_end - bucket_s)
            )  # fmt: skip
            continue
        median = float(np.median(baseline_values))
        spread = MAD_SCALE * float(np.median(np.abs(baseline_values - median)))
        floor = max(abs(median) * 0.05, 1e-9)  # a flat baseline still allows small wobbles
        score = abs(value - median) / max(spread, floor)
        out.append(
            Anomaly(
                signal=signal,
                value=value,
                baseline=median,
                score=score,
                anomalous=score > threshold,
                bucket_start=last_end - bucket_s,
            )
        )
    return out
