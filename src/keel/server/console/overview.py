"""The overview page's figures: one tenant's requests against the contract, hour by hour.

Everything comes from the recorded requests and the cost ledger of the signed-in
tenant only: latency against the p95 target, availability and the error budget with
its burn rate, cost today and this month against the tenant's budgets, cache hit ratio
and requests by mode.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.contract import Contract
from keel.ops.costs import CostLedger
from keel.store import Database
from keel.store.json_sql import json_text

__all__ = ["Overview", "tenant_overview"]

STATUS_CLIENT_CLOSED = 499


@dataclass(frozen=True, kw_only=True)
class Overview:
    """A tenant's service health over the last day and the error-budget window."""

    hours: int
    requests: int
    p95_ms: float | None
    p95_target_ms: int
    availability: float | None
    availability_target: float
    error_budget_remaining: float | None
    burn_rate_1h: float
    cache_hit_ratio: float | None
    cost_today_usd: float
    cost_month_usd: float
    budgets: list[dict[str, Any]] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)
    hourly_requests: list[float] = field(default_factory=list)
    hourly_p95_ms: list[float | None] = field(default_factory=list)
    hourly_failure_rate: list[float | None] = field(default_factory=list)
    hourly_cache_hit_ratio: list[float | None] = field(default_factory=list)


def tenant_overview(
    db: Database, contract: Contract, ledger: CostLedger, *, tenant: str, hours: int = 24, now: float | None = None
) -> Overview:
    """The overview of ``tenant``."""
    now = time.time() if now is None else now
    slo = contract.slo
    window_start = now - slo.error_budget_window_days * 86400
    rows = (
        db.connection()
        .execute(
            f"SELECT created_at, status, latency_ms, mode, {json_text(db.dialect, 'data_json', 'response.cache')}"
            " AS cache FROM traces WHERE tenant = ? AND created_at >= ? AND status != ?",
            (tenant, window_start, STATUS_CLIENT_CLOSED),
        )
        .fetchall()
    )
    created = np.array([r["created_at"] for r in rows], dtype=np.float64)
    status = np.array([r["status"] for r in rows], dtype=np.int64)
    latency = np.array([r["latency_ms"] for r in rows], dtype=np.float64)
    failed = status >= 500
    allowed = 1.0 - slo.availability
    total = len(rows)
    day = created >= now - hours * 3600
    served_day = day & (status < 400)
    last_hour = created >= now - 3600
    retrieval_day = [r["cache"] for r, d in zip(rows, day, strict=True) if d and r["cache"] not in (None, "off")]
    hits = sum(1 for c in retrieval_day if c in ("exact", "semantic"))
    hourly_requests: list[float] = []
    hourly_p95: list[float | None] = []
    hourly_fail: list[float | None] = []
    hourly_cache: list[float | None] = []
    start = now - hours * 3600
    for h in range(hours):
        inside = (created >= start + h * 3600) & (created < start + (h + 1) * 3600)
        n = int(inside.sum())
        hourly_requests.append(float(n))
        ok = inside & (status < 400)
        hourly_p95.append(float(np.percentile(latency[ok], 95)) if ok.any() else None)
        hourly_fail.append(float(failed[inside].sum()) / n if n else None)
        caches = [r["cache"] for r, i in zip(rows, inside, strict=True) if i and r["cache"] not in (None, "off")]
        hourly_cache.append(sum(1 for c in caches if c in ("exact", "semantic")) / len(caches) if caches else None)
    hour_total = int(last_hour.sum())
    budgets = []
    for budget in contract.cost.budgets:
        if budget.scope != "tenant" or budget.name != tenant:
            continue
        spent = ledger.spent(scope="tenant", name=tenant, period=budget.period, when=now)
        budgets.append({"period": budget.period, "usd": budget.usd, "spent_usd": spent})
    return Overview(
        hours=hours,
        requests=total,
        p95_ms=round(float(np.percentile(latency[served_day], 95)), 1) if served_day.any() else None,
        p95_target_ms=slo.p95_latency_ms,
        availability=round(1.0 - float(failed.sum()) / total, 6) if total else None,
        availability_target=slo.availability,
        error_budget_remaining=round(1.0 - float(failed.sum()) / (allowed * total), 4) if total and allowed else None,
        burn_rate_1h=(float(failed[last_hour].sum()) / hour_total / allowed) if hour_total and allowed else 0.0,
        cache_hit_ratio=hits / len(retrieval_day) if retrieval_day else None,
        cost_today_usd=ledger.spent(scope="tenant", name=tenant, period="day", when=now),
        cost_month_usd=ledger.spent(scope="tenant", name=tenant, period="month", when=now),
        budgets=budgets,
        modes=dict(Counter(str(r["mode"]) for r, d in zip(rows, day, strict=True) if d).most_common()),
        hourly_requests=hourly_requests,
        hourly_p95_ms=hourly_p95,
        hourly_failure_rate=hourly_fail,
        hourly_cache_hit_ratio=hourly_cache,
    )
