"""The evaluations pages: runs saved by ``keel eval``, one run in detail, and two runs compared.

Runs are the JSON reports in ``DATA_DIR/evals`` (:class:`~keel.evals.report.RunReport`).
They are operator-level, not tenant data: every reviewer and admin sees them. A run id
names a file in that folder, so only plain names (``[A-Za-z0-9._-]``, not starting with
a dot) are accepted.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response

from keel.errors import InvalidRequest, NotFound
from keel.server.console.charts import bar_chart
from keel.server.console.web import page_session, render
from keel.server.deps import runtime_of

if TYPE_CHECKING:
    from keel.evals.compare import Comparison
    from keel.evals.report import RunReport

__all__ = ["HEADLINE", "RunSummary", "check_run_id", "list_runs", "load_run", "router"]

HEADLINE = [
    "retrieval.recall@k",
    "generation.correctness",
    "generation.citation_recall",
    "ops.latency_p95_ms",
]
"""Metrics shown beside each run in the list (the pass rate has a column of its own)."""

TAG_METRIC = "cases.pass_rate"
"""The metric charted by tag on a run's page."""

TAG_COLUMNS = [
    ("cases.pass_rate", "passed"),
    ("retrieval.recall@k", "recall@k"),
    ("generation.correctness", "correct"),
    ("generation.citation_recall", "cited"),
    ("generation.mode_accuracy", "mode"),
]
"""Metrics tabled by tag on a run's page: name and column heading."""

_RUN_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")

router = APIRouter(prefix="/console/evals", include_in_schema=False)


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One saved run, as listed."""

    run_id: str
    suite: str
    started_at: float
    cases: int
    pass_rate: float | None
    gate_passed: bool
    headline: dict[str, float | None]


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain file name; :class:`InvalidRequest` otherwise (no path may be smuggled in)."""
    if not _RUN_ID.match(run_id):
        raise InvalidRequest("A run id has only letters, digits, '.', '_' and '-'.", code="invalid_parameter")
    return run_id


def load_run(folder: Path, run_id: str) -> RunReport:
    """The saved run ``run_id``; :class:`NotFound` if there is none (or it is unreadable)."""
    from keel.evals.report import load_report  # keel.evals imports the server: not at import time

    path = folder / f"{check_run_id(run_id)}.json"
    try:
        return load_report(path)
    except FileNotFoundError:
        raise NotFound(f"No evaluation run {run_id!r}.") from None
    except (OSError, ValueError, TypeError):
        raise NotFound(f"Evaluation run {run_id!r} cannot be read.") from None


def list_runs(folder: Path) -> list[RunSummary]:
    """Every readable run in ``folder``, newest first."""
    from keel.evals.report import load_report

    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.json"):
        try:
            report = load_report(path)
        except (OSError, ValueError, TypeError):
            continue
        out.append(
            RunSummary(
                run_id=path.stem,
                suite=report.suite,
                started_at=report.started_at,
                cases=len(report.cases),
                pass_rate=report.aggregate.get("cases.pass_rate"),
                gate_passed=report.gate_passed,
                headline={m: report.aggregate.get(m) for m in HEADLINE},
            )
        )
    return sorted(out, key=lambda r: r.started_at, reverse=True)


def when(ts: float | None) -> str:
    """A timestamp as people read it in a table (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "-"


def number(value: object) -> str:
    """A metric value: three decimals, thousands for large ones, a dash when missing."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _folder(request: Request) -> Path:
    return runtime_of(request).project.data_dir / "evals"


@router.get("")
async def runs(request: Request) -> Response:
    """Saved evaluation runs, newest first, with a form to compare two."""
    session = page_session(request, role="reviewer")
    items = await asyncio.to_thread(list_runs, _folder(request))
    return render(
        request,
        "evals.html",
        session=session,
        title="Evaluations",
        runs=items,
        headline=HEADLINE,
        when=when,
        number=number,
    )


@router.get("/compare")
async def compare(request: Request, a: str = "", b: str = "") -> Response:
    """Run ``b`` against the baseline ``a``: metric deltas with 95% intervals, and flipped cases."""
    session = page_session(request, role="reviewer")
    folder = _folder(request)

    def load() -> Comparison:
        from keel.evals.compare import compare_runs

        return compare_runs(load_run(folder, a), load_run(folder, b))

    result = await asyncio.to_thread(load)
    return render(request, "evals_compare.html", session=session, title=f"{b} against {a}", c=result, number=number)


@router.get("/{run_id}")
async def run(request: Request, run_id: str) -> Response:
    """One run: its gate, metrics overall and by tag, and its failing cases linked to their traces."""
    session = page_session(request, role="reviewer")
    report = await asyncio.to_thread(load_run, _folder(request), run_id)
    by_tag = [(tag, float(values.get(TAG_METRIC) or 0.0)) for tag, values in report.by_tag.items()]
    return render(
        request,
        "evals_run.html",
        session=session,
        title=f"Run {report.run_id}",
        r=report,
        run_id=run_id,
        failing=[c for c in report.cases if not c["passed"]],
        tag_chart=bar_chart(by_tag, label="Pass rate by tag"),
        tag_metric=TAG_METRIC,
        tag_columns=TAG_COLUMNS,
        when=when,
        number=number,
    )
