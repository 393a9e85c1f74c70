"""``genai-audit hold``: legal holds that keep records past their retention."""

from __future__ import annotations

from datetime import datetime

import click

from genai_audit.cli.common import (
    END,
    START,
    CommandError,
    actor_option,
    check_period,
    open_existing_store,
    open_store,
    store_options,
)
from genai_audit.cli.formats import format_table
from genai_audit.clickhouse.holds import Hold, HoldError, add_hold, list_holds, release_hold
from genai_audit.clickhouse.tenants import require_known_tenant
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore


@click.group("hold")
def command() -> None:
    """Legal holds: held records survive their retention until the hold is released.

    A hold covers a tenant, optionally one user and a time range. Records it covers are
    copied at once into held_interactions (no TTL); later ones are copied as the store's
    owner writes them (and by the maintenance sweep); releasing a hold drops its copies.
    See docs/retention.md.
    """


@command.command("add")
@click.option("--tenant", required=True, help="Tenant id.")
@click.option("--user", "user_id", help="Plaintext user id (pseudonymized; never stored).")
@click.option("--from", "from_", type=START, help="First day (or time) covered, UTC.")
@click.option("--to", type=END,
              help="Last day covered, UTC (a date is inclusive). Omit to cover new records too.")
@click.option("--reason", required=True, help="Why (case number, matter...).")
@click.option("--new-tenant", is_flag=True,
              help="The tenant has no records yet: hold its future records.")
@actor_option
@store_options
def add_cmd(tenant: str, user_id: str | None, from_: datetime | None, to: datetime | None,
            reason: str, new_tenant: bool, actor: str, settings: Settings) -> None:
    """Place a legal hold.

    \b
    Examples:
      genai-audit hold add --tenant acme --reason "Doe v. Acme, case 24-117"
      genai-audit hold add --tenant acme --user alice@acme.com \\
          --from 2025-01-01 --to 2025-06-30 --reason "internal investigation 7"

    A tenant the store has never seen is refused (a typo would hold nothing); pass
    --new-tenant to hold a tenant's records from its first one on.
    """
    check_period(from_, to)
    store = open_store(settings)
    if not new_tenant:
        require_known_tenant(store, tenant)
    try:
        hold = add_hold(store, open_keystore(settings), tenant_id=tenant, reason=reason,
                        actor=actor, user_id=user_id, from_ts=from_, to_ts=to)
    except HoldError as exc:
        raise CommandError(str(exc)) from exc
    click.echo(f"hold {hold.hold_id} placed on {_scope(hold)}: {hold.rows_held} records held")


@command.command("release")
@click.argument("hold_id")
@click.option("--reason", required=True, help="Why the hold ends (recorded).")
@actor_option
@store_options
def release_cmd(hold_id: str, reason: str, actor: str, settings: Settings) -> None:
    """Release a hold: its copies are dropped; the records expire on their own schedule.

    \b
    Example:
      genai-audit hold release 3f0c...-... --reason "case settled 2026-03-01"
    """
    try:
        hold = release_hold(open_store(settings), hold_id, actor=actor, reason=reason)
    except HoldError as exc:
        raise CommandError(str(exc)) from exc
    click.echo(f"hold {hold.hold_id} released by {hold.released_by}")


@command.command("list")
@click.option("--tenant", help="One tenant's holds.")
@click.option("--all", "include_released", is_flag=True, help="Include released holds.")
@store_options
def list_cmd(tenant: str | None, include_released: bool, settings: Settings) -> None:
    """List legal holds (active ones unless --all).

    \b
    Examples:
      genai-audit hold list
      genai-audit hold list --tenant acme --all
    """
    holds = list_holds(open_existing_store(settings), tenant, include_released=include_released)
    click.echo(format_holds(holds))


def format_holds(holds: list[Hold]) -> str:
    rows = [(h.hold_id, _scope(h), h.rows_held, f"{h.placed_by} {h.placed_at:%Y-%m-%d %H:%M}",
             "active" if h.active else f"released {h.released_at:%Y-%m-%d} by {h.released_by}",
             h.reason) for h in holds]
    return format_table(["hold_id", "scope", "records", "placed", "state", "reason"], rows)


def _scope(hold: Hold) -> str:
    user = f" user {hold.user_key[:12]}…" if hold.user_key else " all users"
    start = f"{hold.from_ts:%Y-%m-%d %H:%M}" if hold.from_ts else "start"
    end = f"{hold.to_ts:%Y-%m-%d %H:%M}" if hold.to_ts else "open"
    return f"{hold.tenant_id}{user} [{start} .. {end})"
