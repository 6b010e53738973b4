"""SLOs and error budgets from the recorded requests.

Two objectives are measured. **Availability**: a request counts against it when Keel
failed it, status 5xx (a client's own mistake, 4xx, does not spend the error budget;
neither does a client that hung up, 499). **Latency**: ``slo.p95_latency_ms`` means at
most 5% of served requests (status below 400) may be slower than the target, so every
served request over the target spends the latency budget.

Burn rate over a window is the window's bad share divided by the share the SLO
allows (failures among requests for availability, slow requests among served ones
for latency). Each of the contract's ``slo.burn_rate_alerts`` is evaluated for both
objectives: an alert fires when both its long and its short window burn faster than
its threshold (the long window says the burn matters, the short one that it is still
happening).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from keel.contract import SloSettings
from keel.store import Database

__all__ = [
    "LATENCY_ALLOWED_SLOW",
    "AlertState",
    "SloName",
    "SloReport",
    "alert_message",
    "compute_slo",
    "hourly_series",
    "notify",
    "sparkline",
]

STATUS_CLIENT_CLOSED = 499

SloName = Literal["availability", "latency"]
"""The objectives a burn-rate alert can watch."""

LATENCY_ALLOWED_SLOW = 0.05
"""Share of served requests allowed over ``slo.p95_latency_ms`` (the target is a 95th percentile)."""


@dataclass(frozen=True, kw_only=True)
class AlertState:
    """One multi-window burn-rate alert of one SLO and whether it fires."""

    slo: SloName
    long_minutes: int
    short_minutes: int
    threshold: float
    long_burn: float
    short_burn: float

    @property
    def key(self) -> str:
        """Names the alert uniquely within a report: ``latency:60/5``."""
        return f"{self.slo}:{self.long_minutes}/{self.short_minutes}"

    @property
    def firing(self) -> bool:
        """Both windows burn faster than the threshold."""
        return self.long_burn > self.threshold and self.short_burn > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "slo": self.slo,
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
    served: int
    """Requests served (status below 400): the population latency is judged on."""
    slow: int
    """Served requests slower than the p95 target."""
    p95_latency_ms: float | None
    p95_target_ms: int
    error_budget_remaining: float | None
    """Share of the window's availability error budget not yet spent (negative when overspent)."""
    latency_budget_remaining: float | None
    """Share of the window's latency budget (5% of served requests may be slow) not yet spent."""
    alerts: list[AlertState] = field(default_factory=list)
    """Every configured alert for availability, then every one for latency."""

    @property
    def latency_ok(self) -> bool | None:
        """Whether p95 latency meets its target (``None`` without traffic)."""
        return None if self.p95_latency_ms is None else self.p95_latency_ms <= self.p95_target_ms

    @property
    def firing(self) -> list[AlertState]:
        """The alerts that fire now."""
        return [a for a in self.alerts if a.firing]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "window_days": self.window_days,
            "requests": self.requests,
            "failures": self.failures,
            "availability": self.availability,
            "availability_target": self.availability_target,
            "served": self.served,
            "slow": self.slow,
            "p95_latency_ms": self.p95_latency_ms,
            "p95_target_ms": self.p95_target_ms,
            "latency_ok": self.latency_ok,
            "error_budget_remaining": self.error_budget_remaining,
            "latency_budget_remaining": self.latency_budget_remaining,
            "alerts": [a.to_dict() for a in self.alerts],
        }


@dataclass(frozen=True, kw_only=True)
class _Rows:
    created: np.ndarray
    status: np.ndarray
    latency: np.ndarray

    @property
    def failed(self) -> np.ndarray:
        return np.asarray(self.status >= 500)

    @property
    def served(self) -> np.ndarray:
        return np.asarray(self.status < 400)

    def slow(self, target_ms: float) -> np.ndarray:
        return np.asarray(self.served & (self.latency > target_ms))


def _rows(db: Database, since: float) -> _Rows:
    rows = (
        db.connection()
        .execute(
            "SELECT created_at, status, latency_ms FROM traces WHERE created_at >= ? AND status != ?",
            (since, STATUS_CLIENT_CLOSED),
        )
        .fetchall()
    )
    return _Rows(
        created=np.array([r[0] for r in rows], dtype=np.float64),
        status=np.array([r[1] for r in rows], dtype=np.int64),
        latency=np.array([r[2] for r in rows], dtype=np.float64),
    )


def _burn(created: np.ndarray, bad: np.ndarray, counted: np.ndarray, since: float, allowed: float) -> float:
    """Bad share among the ``counted`` requests since ``since``, over the allowed share."""
    inside = (created >= since) & counted
    total = int(inside.sum())
    if total == 0:
        return 0.0
    return float(bad[inside].sum()) / total / allowed


def _remaining(bad: int, population: int, allowed: float) -> float | None:
    budget = allowed * population
    return round(1.0 - bad / budget, 4) if budget > 0 else None


def compute_slo(db: Database, slo: SloSettings, *, now: float | None = None) -> SloReport:
    """The SLO report over the contract's window, with every configured burn-rate alert for both SLOs."""
    now = time.time() if now is None else now
    rows = _rows(db, now - slo.error_budget_window_days * 86400)
    failed, served, slow = rows.failed, rows.served, rows.slow(slo.p95_latency_ms)
    everyone = np.ones(len(rows.created), dtype=bool)
    allowed = 1.0 - slo.availability
    measures: list[tuple[SloName, np.ndarray, np.ndarray, float]] = [
        ("availability", failed, everyone, allowed),
        ("latency", slow, served, LATENCY_ALLOWED_SLOW),
    ]
    alerts = [
        AlertState(
            slo=name,
            long_minutes=a.long_minutes,
            short_minutes=a.short_minutes,
            threshold=a.threshold,
            long_burn=_burn(rows.created, bad, counted, now - a.long_minutes * 60, share),
            short_burn=_burn(rows.created, bad, counted, now - a.short_minutes * 60, share),
        )
        for name, bad, counted, share in measures
        for a in slo.burn_rate_alerts
    ]
    total, failures, n_served, n_slow = len(rows.created), int(failed.sum()), int(served.sum()), int(slow.sum())
    return SloReport(
        window_days=slo.error_budget_window_days,
        requests=total,
        failures=failures,
        availability=round(1.0 - failures / total, 6) if total else None,
        availability_target=slo.availability,
        served=n_served,
        slow=n_slow,
        p95_latency_ms=round(float(np.percentile(rows.latency[served], 95)), 1) if n_served else None,
        p95_target_ms=slo.p95_latency_ms,
        error_budget_remaining=_remaining(failures, total, allowed),
        latency_budget_remaining=_remaining(n_slow, n_served, LATENCY_ALLOWED_SLOW),
        alerts=alerts,
    )


def hourly_series(
    db: Database, *, hours: int = 24, now: float | None = None, p95_target_ms: float | None = None
) -> list[dict[str, float | None]]:
    """Per hour, oldest first: requests, failure rate and p95 latency (and, given the target, the slow share)."""
    now = time.time() if now is None else now
    start = now - hours * 3600
    rows = _rows(db, start)
    out: list[dict[str, float | None]] = []
    for h in range(hours):
        lo, hi = start + h * 3600, start + (h + 1) * 3600
        inside = (rows.created >= lo) & (rows.created < hi)
        n = int(inside.sum())
        ok = inside & rows.served
        point: dict[str, float | None] = {
            "requests": float(n),
            "failure_rate": float(rows.failed[inside].sum()) / n if n else None,
            "p95_ms": float(np.percentile(rows.latency[ok], 95)) if ok.any() else None,
        }
        if p95_target_ms is not None:
            point["slow_rate"] = float((rows.latency[ok] > p95_target_ms).mean()) if ok.any() else None
        out.append(point)
    return out


def sparkline(values: list[float | None]) -> str:
    """A one-line chart of ``values`` (gaps for missing points)."""
    blocks = " ▁▂▃▄▅▆▇█"
    present = [v for v in values if v is not None and math.isfinite(v)]
    top = max(present, default=0.0)
    if top <= 0:
        return "".join("▁" if v is not None else " " for v in values)
    return "".join(" " if v is None else blocks[max(1, min(8, math.ceil(v / top * 8)))] for v in values)


def alert_message(report: SloReport, alert: AlertState, *, service: str) -> str:
    """One line saying which SLO burns, how fast, over which windows."""
    what = (
        "availability error budget"
        if alert.slo == "availability"
        else f"latency budget (requests slower than {report.p95_target_ms:,} ms)"
    )
    return (
        f"{service}: {what} burning {alert.long_burn:.1f}x over {alert.long_minutes} min and "
        f"{alert.short_burn:.1f}x over {alert.short_minutes} min (threshold {alert.threshold:g}x)"
    )


def notify(
    report: SloReport,
    *,
    webhook: str | None,
    service: str,
    timeout_s: float = 5.0,
    only: Collection[str] | None = None,
) -> list[str]:
    """Log each firing alert (those whose key is in ``only``, if given) and POST it to ``webhook``.

    Returns what could not be delivered.
    """
    import logging

    from keel.ops.webhook import post_alert

    log = logging.getLogger(__name__)
    problems: list[str] = []
    for alert in report.firing:
        if only is not None and alert.key not in only:
            continue
        message = alert_message(report, alert, service=service)
        log.warning("SLO alert: %s", message)
        if webhook is None:
            continue
        payload = {"service": service, "alert": "slo_burn_rate", "message": message, **alert.to_dict()}
        problem = post_alert(webhook, payload, timeout_s=timeout_s)
        if problem is not None:
            problems.append(problem)
    return problems
