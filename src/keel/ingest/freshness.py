"""Per-source freshness: when each source was last ingested, and whether it is due again.

Every ingest records, for each contract source it covered, one attempt: when, whether
it succeeded, how many documents and passages the source has in the index after it,
and the error when it failed. From that record and the source's ``refresh`` interval a
source is, at a given moment:

* ``failing`` when its last attempt failed (its documents from before stay served);
* ``never`` when no ingest of it has succeeded yet;
* ``stale`` when its last success is older than its refresh interval;
* ``fresh`` otherwise.

Every state but ``fresh`` makes a source *due*: ``keel ingest --due`` and the refresh
task of ``keel serve`` ingest exactly those. A source's ``owner`` is who is told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from keel.contract import Contract
from keel.store import Database, Row, upsert_statement

__all__ = [
    "FreshnessStore",
    "SourceFreshness",
    "SourceOutcome",
    "SourceRecord",
    "SourceState",
    "assess",
    "clip_error",
    "source_freshness",
    "summary",
]

_UPSERT_FRESHNESS = upsert_statement(
    "source_freshness",
    (
        "source",
        "last_attempt_at",
        "last_attempt_ok",
        "last_success_at",
        "documents",
        "passages",
        "last_error",
        "last_error_at",
    ),
    key=("source",),
)

SourceState = Literal["fresh", "stale", "failing", "never"]

MAX_ERROR_CHARS = 500


@dataclass(frozen=True, kw_only=True)
class SourceOutcome:
    """What one ingest did for one source."""

    source: str
    ok: bool
    documents: int | None = None
    """Documents the source has in the index after the attempt; ``None``: unknown (left as recorded)."""
    passages: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``keel ingest --json``."""
        return {
            "source": self.source,
            "ok": self.ok,
            "documents": self.documents,
            "passages": self.passages,
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True)
class SourceRecord:
    """What is recorded about one source's ingests."""

    source: str
    last_attempt_at: float
    last_attempt_ok: bool
    last_success_at: float | None
    documents: int
    passages: int
    last_error: str | None
    last_error_at: float | None


@dataclass(frozen=True, kw_only=True)
class SourceFreshness:
    """One contract source's freshness at one moment."""

    source: str
    owner: str
    refresh: str
    refresh_s: float
    state: SourceState
    stale: bool
    """No success yet, or the last one is older than the refresh interval."""
    failing: bool
    """The last attempt failed."""
    last_attempt_at: float | None
    last_success_at: float | None
    age_s: float | None
    """Seconds since the last success."""
    documents: int
    passages: int
    last_error: str | None
    last_error_at: float | None

    @property
    def due(self) -> bool:
        """Whether the source should be ingested now (stale, failing or never ingested)."""
        return self.state != "fresh"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``keel sources --json``."""
        return {
            "source": self.source,
            "owner": self.owner,
            "refresh": self.refresh,
            "state": self.state,
            "stale": self.stale,
            "failing": self.failing,
            "due": self.due,
            "last_attempt_at": self.last_attempt_at,
            "last_success_at": self.last_success_at,
            "age_s": None if self.age_s is None else round(self.age_s, 3),
            "documents": self.documents,
            "passages": self.passages,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


class FreshnessStore:
    """The ``source_freshness`` table: one row per source, updated by every ingest that covers it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, outcomes: Iterable[SourceOutcome], *, at: float) -> None:
        """Record one attempt per outcome, made at ``at``, in one transaction."""
        outcomes = list(outcomes)
        if not outcomes:
            return
        with self._db.transaction() as conn:
            for outcome in outcomes:
                row = conn.execute("SELECT * FROM source_freshness WHERE source = ?", (outcome.source,)).fetchone()
                previous = _record(row) if row is not None else None
                success_at = previous.last_success_at if previous else None
                error = previous.last_error if previous else None
                error_at = previous.last_error_at if previous else None
                if outcome.ok:
                    success_at = at
                else:
                    error, error_at = clip_error(outcome.error or "unknown error"), at
                conn.execute(
                    _UPSERT_FRESHNESS,
                    (
                        outcome.source,
                        at,
                        1 if outcome.ok else 0,
                        success_at,
                        _count(outcome.documents, previous.documents if previous else 0),
                        _count(outcome.passages, previous.passages if previous else 0),
                        error,
                        error_at,
                    ),
                )

    def records(self) -> dict[str, SourceRecord]:
        """Every source's record, by source name."""
        rows = self._db.connection().execute("SELECT * FROM source_freshness").fetchall()
        return {row["source"]: _record(row) for row in rows}


def assess(contract: Contract, records: Mapping[str, SourceRecord], *, now: float) -> list[SourceFreshness]:
    """The freshness of every contract source at ``now``, in contract order."""
    out: list[SourceFreshness] = []
    for source in contract.sources:
        record = records.get(source.name)
        refresh_s = source.refresh_s
        success = record.last_success_at if record else None
        age = max(0.0, now - success) if success is not None else None
        stale = age is None or age > refresh_s
        failing = record is not None and not record.last_attempt_ok
        state: SourceState
        if failing:
            state = "failing"
        elif success is None:
            state = "never"
        elif stale:
            state = "stale"
        else:
            state = "fresh"
        out.append(
            SourceFreshness(
                source=source.name,
                owner=source.owner,
                refresh=source.refresh,
                refresh_s=refresh_s,
                state=state,
                stale=stale,
                failing=failing,
                last_attempt_at=record.last_attempt_at if record else None,
                last_success_at=success,
                age_s=age,
                documents=record.documents if record else 0,
                passages=record.passages if record else 0,
                last_error=record.last_error if record else None,
                last_error_at=record.last_error_at if record else None,
            )
        )
    return out


def summary(sources: list[SourceFreshness]) -> str:
    """One line naming each source by state, without counts (it is shown by the unauthenticated ``/readyz``)."""
    groups: dict[str, list[str]] = {}
    for f in sources:
        groups.setdefault(f.state, []).append(f.source)
    if set(groups) <= {"fresh"}:
        return "all fresh"
    return "; ".join(
        f"{state}: {', '.join(groups[state])}" for state in ("failing", "stale", "never", "fresh") if state in groups
    )


def source_freshness(contract: Contract, db: Database, *, now: float) -> list[SourceFreshness]:
    """The freshness of every contract source at ``now``, read from ``db``."""
    return assess(contract, FreshnessStore(db).records(), now=now)


def _record(row: Row) -> SourceRecord:
    return SourceRecord(
        source=row["source"],
        last_attempt_at=float(row["last_attempt_at"]),
        last_attempt_ok=bool(row["last_attempt_ok"]),
        last_success_at=None if row["last_success_at"] is None else float(row["last_success_at"]),
        documents=int(row["documents"]),
        passages=int(row["passages"]),
        last_error=row["last_error"],
        last_error_at=None if row["last_error_at"] is None else float(row["last_error_at"]),
    )


def _count(value: int | None, previous: int) -> int:
    return previous if value is None else value


def clip_error(text: str) -> str:
    """``text`` cut to the length recorded for a source's last error."""
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"
