"""keel audit: verify the hash chain, export records for compliance, prune by retention."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from keel.cli.common import console, handle_errors, open_project

__all__ = ["command"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, *, now: float | None = None) -> float:
    """A point in time from ``7d`` / ``12h`` (ago), an ISO date or date-time (UTC if no zone)."""
    now = time.time() if now is None else now
    match = _DURATION.match(value.strip())
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30m, 12h, 7d) nor an ISO date (2026-11-01, 2026-11-01T08:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _log(ctx: click.Context) -> Any:
    from keel.audit import AuditLog
    from keel.policy.pii import redact

    project = open_project(ctx)
    project.ensure_dirs()
    return AuditLog(project.open_database(), redact=redact)


@click.group("audit")
def command() -> None:
    """The tamper-evident audit log."""


@command.command("verify")
@click.option("--expect-head", help="A head hash recorded earlier (keel audit head): it must still be in the chain.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@handle_errors
def verify(ctx: click.Context, expect_head: str | None, as_json: bool) -> None:
    """Check every record's hash and link; exit 1 and name the first bad record if any."""
    report = _log(ctx).verify(expect_head=expect_head)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "head_seq": report.head_seq,
                    "head_hash": report.head_hash,
                    "first_bad_seq": report.first_bad_seq,
                    "problem": report.problem,
                }
            )
        )
    elif report.ok:
        console.print(f"[green]audit log intact[/green]: {report.checked} record(s), head {report.head_seq}")
    else:
        console.print(f"[red]audit log tampered[/red]: first bad record {report.first_bad_seq}: {report.problem}")
    if not report.ok:
        sys.exit(1)


@command.command("head")
@click.pass_context
@handle_errors
def head(ctx: click.Context) -> None:
    """Print the last record's sequence number and hash, to keep somewhere safe."""
    seq, digest = _log(ctx).head()
    click.echo(f"{seq} {digest}")


@command.command("export")
@click.option("--since", help="Start: a duration ago (7d, 12h) or an ISO date/time. Default: everything.")
@click.option("--tenant", help="Only this tenant's records.")
@click.option("--action", help="Only this action (or family: 'key' matches key.create, key.revoke...).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.pass_context
@handle_errors
def export(ctx: click.Context, since: str | None, tenant: str | None, action: str | None, out: Path | None) -> None:
    """Write records as JSON Lines (with their hashes, so the export can be checked on its own)."""
    start = parse_since(since) if since else None
    log = _log(ctx)
    handle = out.open("w", encoding="utf-8") if out else sys.stdout
    count = 0
    try:
        for record in log.records(since=start, tenant=tenant, action=action):
            handle.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
            count += 1
    finally:
        if out:
            handle.close()
    if out:
        click.echo(f"{count} record(s) written to {out}.", err=True)


@command.command("prune")
@click.option("--older-than-days", type=click.FloatRange(min=0, min_open=True), help="Default: the contract's policy.")
@click.pass_context
@handle_errors
def prune(ctx: click.Context, older_than_days: float | None) -> None:
    """Delete records past the retention period; the chain stays verifiable."""
    days = older_than_days if older_than_days is not None else open_project(ctx).contract.audit.retention_days
    if days is None:
        click.echo("The contract keeps audit records forever (audit.retention_days is not set); nothing to do.")
        return
    deleted = _log(ctx).prune(older_than=time.time() - days * 86400, actor="cli:" + getpass.getuser())
    click.echo(f"{deleted} record(s) older than {days:g} day(s) deleted.")
