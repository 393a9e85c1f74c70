"""``genai-audit retention``: per-tenant retention policies and the retention status."""

from __future__ import annotations

from datetime import datetime

import click

from genai_audit.cli.common import (
    EXIT_PROBLEM,
    CommandError,
    actor_option,
    open_existing_store,
    open_store,
    store_options,
)
from genai_audit.cli.formats import format_table
from genai_audit.clickhouse.policies import DEFAULT_TENANT, PolicyChange, policy_history, set_policy
from genai_audit.clickhouse.retention import RetentionSummary, retention_summary
from genai_audit.clickhouse.tenants import require_known_tenant
from genai_audit.config import Settings
from genai_audit.processor.factory import default_policy
from genai_audit.processor.retention import PolicyError, RetentionPolicy


@click.group("retention")
def command() -> None:
    """Per-tenant retention: how long records (and, optionally, their content) are kept.

    Each record is stamped with its tenant's policy when it is written, and ClickHouse TTLs
    drop it (or blank its content) when that passes. A policy change applies to records
    written after it; existing records keep the retention they were written with (see
    docs/retention.md). Every change is recorded: who, when, why, old and new values.
    """


@command.command("set")
@click.option("--tenant", required=True, help=f"Tenant id, or '{DEFAULT_TENANT}' for the default.")
@click.option("--days", type=int, required=True, help="Keep records this many days (1-10950).")
@click.option("--content-days", type=int, default=0, show_default=True,
              help="Blank prompt/response content after this many days (0: same as --days).")
@click.option("--reason", required=True, help="Why (recorded with the change).")
@click.option("--new-tenant", is_flag=True,
              help="The tenant has no records yet: set its policy before its first record.")
@actor_option
@store_options
def set_cmd(tenant: str, days: int, content_days: int, reason: str, new_tenant: bool, actor: str,
            settings: Settings) -> None:
    """Set a tenant's retention policy.

    \b
    Examples:
      genai-audit retention set --tenant acme --days 400 --reason "SOC2: 12 months + margin"
      genai-audit retention set --tenant clinic --days 2190 --content-days 30 \\
          --reason "HIPAA 6 years metadata; content only for 30 days"
      genai-audit retention set --tenant '*' --days 365 --reason "store default"

    A tenant the store has never seen is refused (a typo would set a policy nobody has);
    pass --new-tenant to set one before the tenant's first record.
    """
    try:
        policy = RetentionPolicy(days, content_days)
        store = open_store(settings)
        if tenant != DEFAULT_TENANT and not new_tenant:
            require_known_tenant(store, tenant)
        change = set_policy(store, tenant, policy, changed_by=actor, reason=reason)
    except (PolicyError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    click.echo(format_change(change))


@command.command("show")
@click.option("--tenant", help="One tenant's history (default: every tenant).")
@store_options
def show_cmd(tenant: str | None, settings: Settings) -> None:
    """Show every recorded policy change (who, when, old -> new, why).

    \b
    Examples:
      genai-audit retention show
      genai-audit retention show --tenant acme
    """
    store = open_existing_store(settings)
    require_known_tenant(store, tenant)
    changes = policy_history(store, tenant)
    click.echo(format_history(changes, default_policy(settings)))


@command.command("status")
@click.option("--tenant", help="One tenant (default: all).")
@store_options
@click.pass_context
def status_cmd(ctx: click.Context, tenant: str | None, settings: Settings) -> None:
    """What the report's retention section shows: oldest record, what expires in the next
    30 days, active legal holds, and the last archive run and its verification. Exit 1 when
    the last archive run or archive verification failed.

    \b
    Example:
      genai-audit retention status --tenant acme
    """
    store = open_existing_store(settings)
    require_known_tenant(store, tenant)
    summary = retention_summary(store, tenant,
                                default_policy=default_policy(settings))
    click.echo(format_summary(summary))
    if summary.failed_runs:
        ctx.exit(EXIT_PROBLEM)


def _policy(policy: RetentionPolicy | None) -> str:
    if policy is None:
        return "-"
    content = f", content {policy.content_days}d" if policy.content_days else ""
    return f"{policy.days}d{content}"


def format_change(change: PolicyChange) -> str:
    return (f"{change.tenant_id}: {_policy(change.previous)} -> {_policy(change.policy)} "
            f"(by {change.changed_by}, {_when(change.changed_at)}: {change.reason}); "
            "applies to records written from now on")


def format_history(changes: list[PolicyChange], default: RetentionPolicy) -> str:
    rows = [(c.tenant_id, _when(c.changed_at), _policy(c.previous), _policy(c.policy),
             c.changed_by, c.reason) for c in changes]
    table = format_table(["tenant", "changed_at", "old", "new", "by", "reason"], rows)
    return f"{table}\ntenants without a policy (and no '{DEFAULT_TENANT}'): {_policy(default)}"


def format_summary(s: RetentionSummary) -> str:
    lines = [f"Retention{' for ' + s.tenant_id if s.tenant_id else ''}",
             f"  records:                  {s.records}",
             f"  oldest record:            {_when(s.oldest_record)}",
             f"  expire within 30 days:    {s.due_in_30_days}",
             f"  content within 30 days:   {s.content_due_in_30_days}",
             f"  past due (run maintain):  {s.overdue}",
             f"  kept past today's policy: {s.kept_longer_than_policy}",
             "  policies:                 " + (", ".join(
                 f"{t}={_policy(p)}" for t, p in sorted(s.policies.items())) or "default only"),
             f"  active legal holds:       {len(s.active_holds)} ({s.held_records} records held)"]
    for hold in s.active_holds:
        lines.append(f"    {hold.hold_id}  {hold.tenant_id}  {hold.rows_held} records  "
                     f"since {_when(hold.placed_at)}  {hold.reason}")
    for label, run in (("last archive run", s.last_archive),
                       ("last verification", s.last_verification)):
        if run is None:
            lines.append(f"  {label + ':':<26}never")
        else:
            state = "ok" if run.ok else "FAILED: " + "; ".join(run.problems[:3])
            lines.append(f"  {label + ':':<26}{_when(run.finished_at)} {run.destination} "
                         f"({run.objects_written} objects, {run.rows} rows) {state}")
    return "\n".join(lines)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")
