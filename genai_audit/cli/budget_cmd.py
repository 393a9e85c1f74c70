"""``genai-audit budget``: raise (or cut) a monthly budget, recorded with who and why."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

import click

from genai_audit.cli.common import CommandError, actor_option, open_store
from genai_audit.cli.formats import format_table
from genai_audit.clickhouse.budgets import (
    WHOLE_TENANT,
    BudgetChange,
    budget_history,
    record_budget_change,
)
from genai_audit.clock import SYSTEM_CLOCK
from genai_audit.config import Settings
from genai_audit.instrumentation.limits import Limiter, load_limits
from genai_audit.instrumentation.limits.backends import BackendUnavailable

_CONFIG = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                       help="TOML settings file (default: $GENAI_AUDIT_CONFIG or "
                            "./genai-audit.toml); its [limits] table names the Redis.")
_DSN = click.option("--dsn", help="Store [env GENAI_AUDIT_DSN].")
_DATABASE = click.option("--database", help="Database name [env GENAI_AUDIT_DATABASE].")


@click.group("budget")
def command() -> None:
    """Monthly budgets of the pre-LLM guard's limiter (docs/limits.md).

    Budgets come from the [limits] settings; `budget set` overrides one in the limiter's
    shared store (Redis), where every replica sees it at its next call, and records the
    change (who, when, why, the budget it replaced) in the store's budget_changes table.
    """


@command.command("set")
@click.option("--tenant", required=True, help="Tenant id.")
@click.option("--tool", default=WHOLE_TENANT, show_default=True,
              help="A tool of the tenant ('*': the tenant's whole budget).")
@click.option("--usd", required=True, help="The new monthly budget in USD.")
@click.option("--reason", required=True, help="Why (recorded with the change).")
@click.option("--redis-url", help="The limiter's Redis [env GENAI_AUDIT_LIMITS_REDIS_URL].")
@actor_option
@_CONFIG
@_DSN
@_DATABASE
def set_cmd(tenant: str, tool: str, usd: str, reason: str, redis_url: str | None, actor: str,
            config_file: str | None, dsn: str | None, database: str | None) -> None:
    """Raise (or cut) a tenant's or tool's monthly budget, at once and on the record.

    \b
    Example:
      genai-audit budget set --tenant acme --usd 1500 --reason "Q4 launch, approved by CFO"
    """
    try:
        amount = Decimal(usd)
    except InvalidOperation:
        raise CommandError(f"--usd: expected an amount in USD, got {usd!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise CommandError(f"--usd: a budget must be > 0, got {usd}")
    if not reason.strip() or not actor.strip() or not tenant.strip():
        raise CommandError("a budget change needs a tenant, an actor and a reason")
    settings = Settings.load({"dsn": dsn, "database": database}, config_file=config_file)
    limits = load_limits(config_file, overrides={"redis_url": redis_url})
    if not limits.redis_url:
        raise CommandError("budget set needs the limiter's Redis ([limits] redis_url, "
                           "GENAI_AUDIT_LIMITS_REDIS_URL or --redis-url): an in-process "
                           "limiter reads only its settings (change them and restart)")
    store = open_store(settings)
    limiter = Limiter(limits)
    try:
        previous = limiter.budget(tenant, tool)
        limiter.set_budget(tenant, tool, amount)
        change = BudgetChange(tenant, tool, amount, previous, actor, reason, SYSTEM_CLOCK.now())
        try:
            record_budget_change(store, change)
        except Exception:
            _undo(limiter, tenant, tool, previous)  # only what is on the record takes effect
            raise
    except BackendUnavailable as exc:
        raise CommandError(f"the limiter's Redis is unavailable ({exc}); nothing changed"
                           ) from None
    finally:
        limiter.close()
    click.echo(format_change(change))


def _undo(limiter: Limiter, tenant: str, tool: str, previous: Decimal | None) -> None:
    if previous is not None:
        limiter.set_budget(tenant, tool, previous)


@command.command("show")
@click.option("--tenant", help="One tenant's history (default: every tenant).")
@_CONFIG
@_DSN
@_DATABASE
def show_cmd(tenant: str | None, config_file: str | None, dsn: str | None,
             database: str | None) -> None:
    """Every recorded budget change (who, when, old -> new, why)."""
    settings = Settings.load({"dsn": dsn, "database": database}, config_file=config_file)
    click.echo(format_history(budget_history(open_store(settings), tenant)))


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f} USD"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_change(change: BudgetChange) -> str:
    return (f"{change.tenant_id} {change.tool_name}: {_usd(change.previous_usd)} -> "
            f"{_usd(change.budget_usd)} (by {change.changed_by}, {_when(change.changed_at)}: "
            f"{change.reason}); in force from the next call")


def format_history(changes: list[BudgetChange]) -> str:
    return format_table(["tenant", "tool", "changed_at", "old", "new", "by", "reason"],
                        [(c.tenant_id, c.tool_name, _when(c.changed_at), _usd(c.previous_usd),
                          _usd(c.budget_usd), c.changed_by, c.reason) for c in changes])
