"""keel slo: availability, latency and error budget against the contract, with burn-rate alerts."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project, print_json

__all__ = ["command"]


@click.command("slo")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
@click.option("--notify", is_flag=True, help="Send firing alerts to slo.alert_webhook (and the log).")
@click.pass_context
@handle_errors
def command(ctx: click.Context, as_json: bool, notify: bool) -> None:
    """The service against its SLOs; exits 1 while an alert fires."""
    from keel.ops import slo
    from keel.ops.anomaly import detect_anomalies

    project = open_project(ctx)
    project.ensure_dirs()
    db = project.open_database()
    report = slo.compute_slo(db, project.contract.slo)
    series = slo.hourly_series(db, p95_target_ms=project.contract.slo.p95_latency_ms)
    anomalies = detect_anomalies(db)
    db.close()
    problems = (
        slo.notify(report, webhook=project.contract.slo.alert_webhook, service=project.contract.name) if notify else []
    )
    firing = bool(report.firing)
    if as_json:
        print_json(
            {
                **report.to_dict(),
                "last_24h": series,
                "anomalies": [a.to_dict() for a in anomalies],
                "notify_problems": problems,
            }
        )
    else:
        _print(report, series)
        _print_anomalies(anomalies)
        for problem in problems:
            console.print(f"[red]alert not delivered[/red]: {problem}")
    if firing:
        sys.exit(1)


def _print_anomalies(anomalies: Sequence[object]) -> None:
    from keel.ops.anomaly import Anomaly

    table = Table(title="Last hour against the 24 before it (median, robust z-score)")
    for column in ("signal", "last hour", "baseline", "score", "state"):
        table.add_column(column)
    for a in anomalies:
        assert isinstance(a, Anomaly)
        baseline = "-" if a.baseline != a.baseline else f"{a.baseline:.6g}"
        score = "-" if a.score != a.score else f"{a.score:.1f}"
        state = "[red]ANOMALY[/red]" if a.anomalous else ("too little history" if score == "-" else "normal")
        table.add_row(a.signal, f"{a.value:.6g}", baseline, score, state)
    if anomalies:
        console.print(table)


def _print(report: object, series: list[dict[str, float | None]]) -> None:
    from keel.ops.slo import SloReport, sparkline

    assert isinstance(report, SloReport)
    table = Table(title=f"SLOs over the last {report.window_days} days ({report.requests} requests)")
    for column in ("objective", "target", "actual", "state"):
        table.add_column(column)
    if report.availability is None:
        table.add_row("availability", f"{report.availability_target:.3%}", "-", "no traffic")
    else:
        ok = report.availability >= report.availability_target
        table.add_row(
            "availability",
            f"{report.availability_target:.3%}",
            f"{report.availability:.3%} ({report.failures} failed)",
            "[green]ok[/green]" if ok else "[red]breached[/red]",
        )
    latency = "-" if report.p95_latency_ms is None else f"{report.p95_latency_ms:,.0f} ms ({report.slow} slow)"
    state = {None: "no traffic", True: "[green]ok[/green]", False: "[red]breached[/red]"}[report.latency_ok]
    table.add_row("p95 latency", f"{report.p95_target_ms:,} ms", latency, state)
    for name, left in (
        ("error budget left", report.error_budget_remaining),
        ("latency budget left", report.latency_budget_remaining),
    ):
        if left is not None:
            table.add_row(
                name, "> 0%", f"{left:.1%} {_bar(left)}", "[green]ok[/green]" if left > 0 else "[red]spent[/red]"
            )
    console.print(table)
    alerts = Table(title="Burn-rate alerts")
    for column in ("SLO", "windows", "threshold", "long burn", "short burn", "state"):
        alerts.add_column(column)
    for a in report.alerts:
        alerts.add_row(
            a.slo,
            f"{a.long_minutes} min / {a.short_minutes} min",
            f"{a.threshold:g}x",
            f"{a.long_burn:.2f}x",
            f"{a.short_burn:.2f}x",
            "[red]FIRING[/red]" if a.firing else "[green]quiet[/green]",
        )
    console.print(alerts)
    console.print("last 24 h, hourly (oldest first)")
    console.print(f"  requests     {sparkline([s['requests'] for s in series])}")
    console.print(f"  p95 latency  {sparkline([s['p95_ms'] for s in series])}")
    console.print(f"  slow share   {sparkline([s.get('slow_rate') for s in series])}")
    console.print(f"  failures     {sparkline([s['failure_rate'] for s in series])}")


def _bar(left: float) -> str:
    full = max(0, min(20, round(left * 20)))
    return "█" * full + "░" * (20 - full)
