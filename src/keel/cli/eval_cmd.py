"""keel eval: run a suite (the gate), compare two runs, mine cases from traces."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from keel.cli.common import console, handle_errors, print_json, settings_from

__all__ = ["command"]

HEADLINE = [
    "cases.pass_rate",
    "retrieval.recall@k",
    "retrieval.mrr",
    "retrieval.ndcg@10",
    "retrieval.acl_violations",
    "generation.correctness",
    "generation.groundedness",
    "generation.citation_precision",
    "generation.citation_recall",
    "generation.mode_accuracy",
    "generation.policy_compliance",
    "ops.latency_p95_ms",
    "ops.cost_per_case_usd",
]


TAG_COLUMNS = [
    "cases.pass_rate",
    "retrieval.recall@k",
    "generation.correctness",
    "generation.citation_recall",
    "generation.mode_accuracy",
]


class _EvalGroup(click.Group):
    """``keel eval SUITE`` runs the suite; ``keel eval compare|mine`` are the other commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_EvalGroup)
def command() -> None:
    """Evaluate retrieval and generation against a suite: `keel eval SUITE` (see `keel eval run --help`)."""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


@command.command("run")
@click.argument("suite_path", metavar="SUITE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", default=None, help="Evaluate a running server instead of the library in process.")
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --url: YAML mapping each asker id to its API key (e.g. .keel/demo-keys.yaml).",
)
@click.option("--tag", "tags", multiple=True, help="Only cases with this tag (repeatable).")
@click.option("--concurrency", type=int, default=None, help="Cases in flight at once (default: the CPU count).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the JSON and HTML reports (default: PROJECT/.keel/evals).",
)
@click.option("--no-gate", is_flag=True, help="Exit 0 even when a threshold is breached.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON instead of tables.")
@click.pass_context
@handle_errors
def run(
    ctx: click.Context,
    suite_path: Path,
    url: str | None,
    keys_file: Path | None,
    tags: tuple[str, ...],
    concurrency: int | None,
    out: Path | None,
    no_gate: bool,
    as_json: bool,
) -> None:
    """Run SUITE and gate on its thresholds: exit 1 when any is breached.

    Writes RUN_ID.json and RUN_ID.html (self-contained, with charts) to --out.
    """
    from keel.evals.html import render_html
    from keel.evals.report import build_report
    from keel.evals.runner import embedding_similarity, run_cases
    from keel.evals.suite import load_suite
    from keel.project import Project
    from keel.retrieval.embedder import MiniLMEmbedder
    from keel.retrieval.versions import IndexStore
    from keel.runtime import Runtime

    loaded = load_suite(suite_path)
    cases = [c for c in loaded.suite.cases if not tags or set(tags) & set(c.tags)]
    if not cases:
        raise click.ClickException(f"no case of {suite_path} has the tag(s) {list(tags)}")
    settings = settings_from(ctx)
    project = Project.open(settings)
    started = time.time()

    async def execute() -> Any:
        with Progress(
            TextColumn("Evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=as_json,
            disable=as_json,
        ) as bar:
            task = bar.add_task("cases", total=len(cases))

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            workers = concurrency or os.cpu_count() or 2
            if url is None:
                runtime = Runtime.from_settings(settings, project)
                try:
                    await runtime.warm_up()
                    runs = await run_cases(loaded, cases, runtime=runtime, concurrency=workers, progress=progress)
                    return runs, embedding_similarity(runtime.embedder)
                finally:
                    await runtime.close()
            keys = yaml.safe_load(keys_file.read_text(encoding="utf-8")) if keys_file else {}
            index = IndexStore(project.index_dir) if project.index_dir.is_dir() else None
            runs = await run_cases(
                loaded, cases, url=url, keys=keys or {}, index=index, concurrency=workers, progress=progress
            )
            embedder = MiniLMEmbedder(cache_dir=project.cache_dir)
            return runs, embedding_similarity(embedder)

    runs, similarity = asyncio.run(execute())
    report = build_report(
        loaded, runs, target=url or f"in process ({project.root})", started_at=started, similarity=similarity
    )
    folder = out or project.data_dir / "evals"
    json_path = folder / f"{report.run_id}.json"
    html_path = folder / f"{report.run_id}.html"
    report.save(json_path)
    html_path.write_text(render_html(report, trace_url=url), encoding="utf-8")
    if as_json:
        print_json(report.to_json())
    else:
        _print(report)
        console.print(f"\nreport: {html_path}\nrun:    {json_path}")
    if not report.gate_passed and not no_gate:
        sys.exit(1)


def _print(report: Any) -> None:
    gate = Table(title=f"Gate ({'passed' if report.gate_passed else 'FAILED'})")
    for column in ("metric", "value", "min", "max", ""):
        gate.add_column(column)
    for t in report.thresholds:
        gate.add_row(
            t["metric"], _fmt(t["value"]), _fmt(t["min"]), _fmt(t["max"]), "ok" if t["ok"] else "[red]BREACHED[/red]"
        )
    console.print(gate)
    overall = Table(title=f"{report.suite}: {len(report.cases)} cases")
    overall.add_column("metric")
    overall.add_column("value", justify="right")
    for metric in HEADLINE:
        overall.add_row(metric, _fmt(report.aggregate.get(metric)))
    console.print(overall)
    by_tag = Table(title="By tag")
    for column in ("tag", "cases", "passed", "recall@k", "correct", "cited", "mode"):
        by_tag.add_column(column, justify="left" if column == "tag" else "right")
    for tag, values in report.by_tag.items():
        by_tag.add_row(
            tag,
            _fmt(int(values.get("cases.count") or 0)),
            *(_fmt(values.get(m)) for m in TAG_COLUMNS),
        )
    console.print(by_tag)
    failing = [c for c in report.cases if not c["passed"]]
    if failing:
        stages = ", ".join(f"{s} {n}" for s, n in sorted(report.stages.items(), key=lambda kv: -kv[1]))
        console.print(f"\n{len(failing)} failing case(s), by stage: {stages}")
        ftable = Table()
        for column in ("case", "stage", "why"):
            ftable.add_column(column)
        for c in failing[:25]:
            ftable.add_row(c["id"], c["stage"] or "", "; ".join(c["failures"])[:150])
        console.print(ftable)
        if len(failing) > 25:
            console.print(f"... and {len(failing) - 25} more in the report")


@command.command("compare")
@click.argument("run_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def compare(run_a: Path, run_b: Path, as_json: bool) -> None:
    """Compare RUN_B with the baseline RUN_A: metric deltas with 95% bootstrap intervals, case flips."""
    from keel.evals.compare import compare_runs
    from keel.evals.report import load_report

    result = compare_runs(load_report(run_a), load_report(run_b))
    if as_json:
        print_json(result.to_json())
        return
    table = Table(title=f"{result.b} against {result.a}")
    for column in ("metric", "cases", "A", "B", "delta", "95% interval", ""):
        table.add_column(column, justify="right" if column not in ("metric", "") else "left")
    for d in result.deltas:
        mark = ("[green]better[/green]" if d.delta > 0 else "[red]worse[/red]") if d.significant else ""
        if d.metric == "retrieval.acl_violations" and d.significant:
            mark = "[red]worse[/red]" if d.delta > 0 else "[green]better[/green]"
        table.add_row(
            d.metric,
            str(d.cases),
            f"{d.a:.3f}",
            f"{d.b:.3f}",
            f"{d.delta:+.3f}",
            f"[{d.low:+.3f}, {d.high:+.3f}]",
            mark,
        )
    console.print(table)
    console.print(f"pass -> fail ({len(result.pass_to_fail)}): {', '.join(result.pass_to_fail) or '-'}")
    console.print(f"fail -> pass ({len(result.fail_to_pass)}): {', '.join(result.fail_to_pass) or '-'}")


@command.command("mine")
@click.option("--limit", type=int, default=50, show_default=True, help="Most candidates to write.")
@click.option("--recent", type=int, default=1000, show_default=True, help="How many recent traces to read.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write YAML here.")
@click.pass_context
@handle_errors
def mine(ctx: click.Context, limit: int, recent: int, out: Path | None) -> None:
    """Turn recent traces into candidate cases (PII-redacted, one per distinct question) to review."""
    from keel.evals.mine import mine_cases
    from keel.project import Project
    from keel.tracing import TraceStore

    project = Project.open(settings_from(ctx))
    records = TraceStore(project.open_database()).recent(limit=recent)
    cases = mine_cases(records, limit=limit)
    text = "# Candidate cases mined from traces: review every expectation before adding them to a suite.\n"
    text += yaml.safe_dump({"cases": cases}, sort_keys=False, allow_unicode=True, width=120)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(cases)} candidate case(s) to {out}")
    else:
        click.echo(text)
    if not cases:
        click.echo(json.dumps({"note": "no traces with answered questions yet"}), err=True)
