"""keel keys: create, list, rotate, revoke and seed API keys (each change audited)."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from pathlib import Path

import click
import yaml
from rich.table import Table

from keel.cli.common import console, handle_errors, open_project
from keel.identity.admin import Actor

__all__ = ["command"]


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _admin(ctx: click.Context):  # type: ignore[no-untyped-def]
    from keel.audit import AuditLog
    from keel.identity import KeyAdmin, KeyStore
    from keel.policy.pii import redact

    project = open_project(ctx)
    project.ensure_dirs()
    db = project.open_database()
    return KeyAdmin(KeyStore(db), AuditLog(db, redact=redact))


def _actor() -> Actor:
    return Actor(id="cli:" + getpass.getuser(), tenant=None)


@click.group("keys")
def command() -> None:
    """Manage API keys (stored hashed; a key is shown only when created)."""


@command.command("create")
@click.option("--principal", required=True, help="Principal id the key authenticates as.")
@click.option("--groups", default="", help="Comma-separated groups (everyone is implicit).")
@click.option("--tenant", default="default", show_default=True, help="Tenant of the principal.")
@click.option("--roles", default="user", show_default=True, help="Comma-separated roles: user, admin, app, reviewer.")
@click.option("--label", default="", help="A note to recognise the key by.")
@click.option("--scopes", default="", help="Comma-separated scopes narrowing the roles (ask, chat, traces:read, ...).")
@click.option("--apps", default="", help="Comma-separated apps the key may call (default: any).")
@click.option("--expires-in-days", type=click.FloatRange(min=0, min_open=True), help="Days until the key expires.")
@click.pass_context
@handle_errors
def create(
    ctx: click.Context,
    principal: str,
    groups: str,
    tenant: str,
    roles: str,
    label: str,
    scopes: str,
    apps: str,
    expires_in_days: float | None,
) -> None:
    """Create a key; the key itself is printed alone on the last line."""
    admin = _admin(ctx)
    max_age = open_project(ctx).contract.identity.key_max_age_days
    days = expires_in_days if expires_in_days is not None else max_age
    try:
        created = admin.create(
            _actor(),
            principal_id=principal,
            tenant=tenant,
            groups=_split(groups),
            roles=_split(roles),
            label=label,
            scopes=_split(scopes),
            apps=_split(apps),
            expires_in_s=days * 86400 if days is not None else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    p = created.record.principal
    click.echo(
        f"Created key {created.record.key_id} for {p.id} (tenant {p.tenant}; groups {', '.join(sorted(p.groups))};"
        f" roles {', '.join(sorted(p.roles))}). Store it now: it is not shown again.",
        err=True,
    )
    click.echo(created.secret)


@command.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.pass_context
@handle_errors
def list_keys(ctx: click.Context, include_revoked: bool) -> None:
    """List keys (never their secrets)."""
    table = Table()
    table.add_column("key id", no_wrap=True)
    for column in ("principal", "tenant", "groups", "roles", "scopes", "apps", "label", "created", "expires", "state"):
        table.add_column(column)
    for record in _admin(ctx).list(_actor(), include_revoked=include_revoked):
        p = record.principal
        table.add_row(
            record.key_id,
            p.id,
            p.tenant,
            ", ".join(sorted(p.groups)),
            ", ".join(sorted(p.roles)),
            ", ".join(sorted(p.scopes)) or "(roles)",
            ", ".join(sorted(p.apps)) or "(any)",
            record.label,
            _when(record.created_at),
            _when(record.expires_at),
            record.state(),
        )
    console.print(table)


@command.command("revoke")
@click.argument("key_id")
@click.pass_context
@handle_errors
def revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the key KEY_ID (its id from `keel keys list`, or the full key)."""
    try:
        _admin(ctx).revoke(_actor(), key_id)
    except KeyError:
        raise click.ClickException(f"no active key {key_id!r}") from None
    click.echo(f"Revoked {key_id}.")


@command.command("rotate")
@click.argument("key_id")
@click.option(
    "--grace-hours", type=click.FloatRange(min=0), default=24.0, show_default=True, help="How long the old key works."
)
@click.pass_context
@handle_errors
def rotate(ctx: click.Context, key_id: str, grace_hours: float) -> None:
    """Replace KEY_ID with a new key for the same principal; the new key is printed on the last line."""
    try:
        created = _admin(ctx).rotate(_actor(), key_id, grace_s=grace_hours * 3600)
    except KeyError:
        raise click.ClickException(f"no active key {key_id!r}") from None
    click.echo(
        f"Rotated {key_id} -> {created.record.key_id}; the old key stops working in {grace_hours:g} h.", err=True
    )
    click.echo(created.secret)


@command.command("seed")
@click.argument("principals_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write the keys.")
@click.pass_context
@handle_errors
def seed(ctx: click.Context, principals_file: Path, out: Path) -> None:
    """Create one key per principal listed in PRINCIPALS_FILE; write them to --out (mode 600).

    The file reads ``tenant: T`` and ``principals: [{id, groups, roles}]``. Principals
    that already have a key listed in --out are skipped, so seeding is repeatable.
    """
    data = yaml.safe_load(principals_file.read_text(encoding="utf-8")) or {}
    tenant = str(data.get("tenant", "default"))
    existing: dict[str, str] = {}
    if out.exists():
        existing = yaml.safe_load(out.read_text(encoding="utf-8")) or {}
    admin = _admin(ctx)
    actor = _actor()
    active = {r.principal.id for r in admin.list(actor)}
    created = 0
    for entry in data.get("principals", []):
        pid = str(entry["id"])
        if pid in existing and pid in active:
            continue
        key = admin.create(
            actor,
            principal_id=pid,
            tenant=tenant,
            groups=[str(g) for g in entry.get("groups", [])],
            roles=[str(r) for r in entry.get("roles", ["user"])],
            label="demo",
        )
        existing[pid] = key.secret
        created += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# Demo API keys by principal (created by `keel keys seed`). Keep private.\n")
        yaml.safe_dump(existing, handle, sort_keys=True)
    click.echo(f"{created} key(s) created; {len(existing)} in {out}.")


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M") if ts else ""
