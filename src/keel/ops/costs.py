"""The cost ledger: what every request cost, by app, tenant, model and day.

One row per request that called a model, keyed by the request id and written with
the request's running totals, so writing it again (after a second model call, or a
retried write) never charges twice. Budgets read their spend from here; ``keel
costs`` reports it.

The request path uses :meth:`CostLedger.submit`: the row is queued for a writer thread
that commits queued rows in batches, and until it is committed :meth:`CostLedger.spent`
counts it from memory, so a budget sees a call's cost the moment the call ends.
:meth:`CostLedger.close` commits whatever is queued.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Literal, TypedDict, Unpack

from keel.store import Database
from keel.store.writer import BackgroundWriter

__all__ = ["CostLedger", "DailySpend", "Spend", "SpendRow", "period_key"]


def period_key(period: Literal["day", "month"], when: float) -> str:
    """``2026-11-23`` for a day, ``2026-11`` for a month (UTC)."""
    moment = dt.datetime.fromtimestamp(when, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


@dataclass(frozen=True, kw_only=True)
class SpendRow:
    """Spend of one group in a report."""

    day: str
    app: str
    tenant: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True, kw_only=True)
class DailySpend:
    """What one app spent for one tenant on one day."""

    day: str
    app: str
    tenant: str
    cost_usd: float


class Spend(TypedDict):
    """What a request has spent so far: its running totals (the same request id replaces them)."""

    request_id: str
    when: float
    tenant: str
    app: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True, kw_only=True)
class _Entry:
    request_id: str
    when: float
    tenant: str
    app: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    day: str = field(init=False)
    month: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "day", period_key("day", self.when))
        object.__setattr__(self, "month", period_key("month", self.when))

    def row(self) -> tuple[object, ...]:
        return (
            self.request_id,
            self.when,
            self.day,
            self.month,
            self.tenant,
            self.app,
            self.model,
            self.prompt_tokens,
            self.completion_tokens,
            self.cost_usd,
        )


_UPSERT = (
    "INSERT INTO spend (request_id, created_at, day, month, tenant, app, model, prompt_tokens,"
    " completion_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(request_id) DO UPDATE SET model = excluded.model,"
    " prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,"
    " cost_usd = excluded.cost_usd"
)


class CostLedger:
    """Spend in the project database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._writer: BackgroundWriter[_Entry] = BackgroundWriter(
            self._commit, name="keel-spend-writer", on_done=self._forget
        )

    def submit(self, **spend: Unpack[Spend]) -> None:
        """Queue a request's spend so far for the writer thread; counted by :meth:`spent` at once."""
        entry = _Entry(**spend)
        with self._lock:
            self._pending[entry.request_id] = entry
        self._writer.submit(entry)

    def flush(self) -> None:
        """Block until every queued row is committed."""
        self._writer.flush()

    def close(self) -> None:
        """Commit everything queued and stop the writer."""
        self._writer.close()

    def record(self, **spend: Unpack[Spend]) -> None:
        """Record a request's spend so far now (its running totals; the same request id replaces them)."""
        self._commit([_Entry(**spend)])

    def spent(
        self, *, scope: Literal["app", "tenant"], name: str, period: Literal["day", "month"], when: float
    ) -> float:
        """Dollars spent by an app or tenant in the period containing ``when``, queued rows included.

        A queued row for a request whose earlier row is already committed counts both
        until it is written (a few milliseconds): spend is over-, never under-counted.
        """
        column = "app" if scope == "app" else "tenant"
        period_column = "day" if period == "day" else "month"
        key = period_key(period, when)
        with self._lock:
            queued = sum(
                e.cost_usd
                for e in self._pending.values()
                if (e.app if scope == "app" else e.tenant) == name and (e.day if period == "day" else e.month) == key
            )
        row = (
            self._db.connection()
            .execute(
                f"SELECT COALESCE(SUM(cost_usd), 0) FROM spend WHERE {column} = ? AND {period_column} = ?",
                (name, key),
            )
            .fetchone()
        )
        return float(row[0]) + queued

    def _commit(self, entries: list[_Entry]) -> None:
        with self._db.transaction() as conn:
            conn.executemany(_UPSERT, [e.row() for e in entries])

    def _forget(self, entries: list[_Entry]) -> None:
        with self._lock:
            for e in entries:
                if self._pending.get(e.request_id) is e:
                    del self._pending[e.request_id]

    def daily(self, *, since_day: str) -> list[DailySpend]:
        """Spend per day, app and tenant from ``since_day`` (``YYYY-MM-DD``, UTC) on, oldest day first."""
        self.flush()
        rows = self._db.connection().execute(
            "SELECT day, app, tenant, SUM(cost_usd) AS cost FROM spend WHERE month >= ? AND day >= ?"
            " GROUP BY day, app, tenant ORDER BY day",
            (since_day[:7], since_day),
        )
        return [DailySpend(day=r["day"], app=r["app"], tenant=r["tenant"], cost_usd=float(r["cost"])) for r in rows]

    def report(self, *, since_day: str | None = None, tenant: str | None = None) -> list[SpendRow]:
        """Spend grouped by day, app, tenant and model, newest day first."""
        self.flush()
        clauses, args = [], []
        if since_day:
            clauses.append("day >= ?")
            args.append(since_day)
        if tenant:
            clauses.append("tenant = ?")
            args.append(tenant)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._db.connection().execute(
            "SELECT day, app, tenant, model, COUNT(*) AS requests, SUM(prompt_tokens) AS pt,"
            " SUM(completion_tokens) AS ct, SUM(cost_usd) AS cost FROM spend" + where + " GROUP BY day, app, tenant,"
            " model ORDER BY day DESC, cost DESC",
            args,
        )
        return [
            SpendRow(
                day=r["day"],
                app=r["app"],
                tenant=r["tenant"],
                model=r["model"],
                requests=int(r["requests"]),
                prompt_tokens=int(r["pt"]),
                completion_tokens=int(r["ct"]),
                cost_usd=float(r["cost"]),
            )
            for r in rows
        ]
