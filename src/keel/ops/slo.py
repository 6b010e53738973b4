"""SLOs and error budgets from the recorded requests.

A request counts against availability when Keel failed it: status 5xx (a client's
own mistake, 4xx, does not spend the error budget; neither does a client that hung up,
499). Latency is judged on requests that were served. Burn rate over a window is the
window's failure rate divided by the failure rate the SLO allows; an alert fires when
both its long and its short window burn faster than its threshold (the long window
says the burn matters, the short one that it is still happening).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.contract import SloSettings
from keel.store import Database

__all__ = ["AlertState", "SloReport", "compute_slo", "hourly_series", "notify", "sparkline"]

STATUS_CLIENT_CLOSED = 499


@dataclass(frozen=True, kw_only=True)
class AlertState:
    """One multi-window burn-rate alert and whether it fires."""

    long_minutes: int
    short_minutes: int
    threshold: float
    long_burn: float
    short_burn: float

    @property
    def firing(self) -> bool:
        """Both windows burn faster than the threshold."""
        return self.long_burn > self.threshold and self.short_burn > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "long_minutes": self.long_minutes,
            "short_minutes": self.short_minutes,
            "threshold": self.threshold,
            "long_burn": round(self.long_burn, 3),
            "short_burn": round(self.short_burn, 3),
            "firing": self.firing,
        }


@dataclass(frozen=True, kw_only=True)
class SloReport:
    """The service against its SLOs over the error-budget window."""

    window_days: int
    requests: int
    failures: int
    availability: float | None
    availability_target: float
    p95_latency_ms: float | None
    p95_target_ms: int
    error_budget_remaining: float | None
    """Share of the window's error budget not yet spent (negative when overspent)."""
    alerts: list[AlertState] = field(default_factory=list)

    @property
    def latency_ok(self) -> bool | None:
        """Whether p95 latency meets its target (``None`` without traffic)."""
        return None if self.p95_latency_ms is None else self.p95_latency_ms <= self.p95_target_ms

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "window_days": self.window_days,
            "requests": self.requests,
            "failures": self.failures,
            "availability": self.availability,
            "availability_target": self.availability_target,
            "p95_latency_ms": self.p95_latency_ms,
            "p95_target_ms": self.p95_target_ms,
            "latency_ok": self.latency_ok,
            "error_budget_remaining": self.error_budget_remaining,
            "alerts": [a.to_dict() for a in self.alerts],
        }


def _rows(db: Database, since: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = (
        db.connection()
        .execute(
            "SELECT created_at, status, latency_ms FROM traces WHERE created_at >= ? AND status != ?",
            (since, STATUS_CLIENT_CLOSED),
        )
        .fetchall()
    )
    created = np.array([r[0] for r in rows], dtype=np.float64)
    status = np.array([r[1] for r in rows], dtype=np.int64)
    latency = np.array([r[2] for r in rows], dtype=np.float64)
    return created, status, latency


def _burn(created: np.ndarray, failed: np.ndarray, since: float, allowed: float) -> float:
    inside = created >= since
    total = int(inside.sum())
    if total == 0:
        return 0.0
    return float(failed[inside].sum()) / total / allowed


def compute_slo(db: Database, slo: SloSettings, *, now: float | None = None) -> SloReport:
    """The SLO report over the contract's window, with every configured burn-rate alert."""
    now = time.time() if now is None else now
    since = now - slo.error_budget_window_days * 86400
    created, status, latency = _rows(db, since)
    failed = status >= 500
    total = len(created)
    failures = int(failed.sum())
    allowed = 1.0 - slo.availability
    served = latency[~failed]
    alerts = [
        AlertState(
            long_minutes=a.long_minutes,
            short_minutes=a.short_minutes,
            threshold=a.threshold,
            long_burn=_burn(created, failed, now - a.long_minutes * 60, allowed),
            short_burn=_burn(created, failed, now - a.short_minutes * 60, allowed),
        )
        for a in slo.burn_rate_alerts
    ]
    budget = allowed * total
    return SloReport(
        window_days=slo.error_budget_window_days,
        requests=total,
        failures=failures,
        availability=round(1.0 - failures / total, 6) if total else None,
        availability_target=slo.availability,
        p95_latency_ms=round(float(np.percentile(served, 95)), 1) if len(served) else None,
        p95_target_ms=slo.p95_latency_ms,
        error_budget_remaining=round(1.0 - failures / budget, 4) if budget > 0 else None,
        alerts=alerts,
    )


def hourly_series(db: Database, *, hours: int = 24, now: float | None = None) -> list[dict[str, float | None]]:
    """Per hour, oldest first: requests, failure rate and p95 latency, for a chart."""
    now = time.time() if now is None else now
    start = now - hours * 3600
    created, status, latency = _rows(db, start)
    out: list[dict[str, float | None]] = []
    for h in range(hours):
        lo, hi = start + h * 3600, start + (h + 1) * 3600
        inside = (created >= lo) & (created < hi)
        n = int(inside.sum())
        ok = inside & (status < 500)
        out.append(
            {
                "requests": float(n),
                "failure_rate": float((status[inside] >= 500).sum()) / n if n else None,
                "p95_ms": float(np.percentile(latency[ok], 95)) if ok.any() else None,
            }
        )
    return out


def sparkline(values: list[float | None]) -> str:
    """A one-line chart of ``values`` (gaps for missing points)."""
    blocks = " ▁▂▃▄▅▆▇█"
    present = [v for v in values if v is not None and math.isfinite(v)]
    top = max(present, default=0.0)
    if top <= 0:
        return "".join("▁" if v is not None else " " for v in values)
    return "".join(" " if v is None else blocks[max(1, min(8, math.ceil(v / top * 8)))] for v in values)


def notify(report: SloReport, *, webhook: str | None, service: str, timeout_s: float = 5.0) -> list[str]:
    """Log each firing alert and POST it to ``webhook``; returns what could not be delivered."""
    import logging

    import httpx

    log = logging.getLogger(__name__)
    problems: list[str] = []
    for alert in report.alerts:
        if not alert.firing:
            continue
        message = (
            f"{service}: error budget burning {alert.long_burn:.1f}x over {alert.long_minutes} min and "
            f"{alert.short_burn:.1f}x over {alert.short_minutes} min (threshold {alert.threshold:g}x)"
        )
        log.warning("SLO alert: %s", message)
        if webhook is None:
            continue
        payload = {"service": service, "alert": "slo_burn_rate", "message": message, **alert.to_dict()}
        try:
            response = httpx.post(webhook, json=payload, timeout=timeout_s)
            if response.status_code >= 300:
                problems.append(f"webhook answered {response.status_code}")
        except httpx.HTTPError as exc:
            problems.append(f"webhook unreachable: {type(exc).__name__}")
    return problems
