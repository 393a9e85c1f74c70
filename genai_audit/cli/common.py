"""What every command shares: store options, settings, and errors as exit codes.

Exit codes: 0 ok, 1 the check found a problem, 2 usage or environment error (one line on
stderr). Commands raise ``click.UsageError``/``CommandError`` or let a library error
through; ``main`` maps them.
"""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import click

from genai_audit.cli.exit_codes import EXIT_ERROR as EXIT_ERROR
from genai_audit.cli.exit_codes import EXIT_OK as EXIT_OK
from genai_audit.cli.exit_codes import EXIT_PROBLEM as EXIT_PROBLEM
from genai_audit.clickhouse.errors import StoreNotFound
from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.neutralize import visible

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """A usage or environment error: printed as one line, exit code 2."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(visible(f"genai-audit: error: {self.format_message()}"), err=True)


def store_options(func: F) -> F:
    """``--dsn``, ``--database`` and ``--config`` (flags > env > file > default)."""

    @click.option("--config", "config_file", type=click.Path(dir_okay=False),
                  help="TOML settings file (default: $GENAI_AUDIT_CONFIG or ./genai-audit.toml).")
    @click.option("--database",
                  help="Database name [env GENAI_AUDIT_DATABASE; default genai_audit].")
    @click.option("--dsn", help="Store: chdb:///abs/path, a path, or http(s)://user:pass@host:8123 "
                  "[env GENAI_AUDIT_DSN; default ./genai-audit-data].")
    @functools.wraps(func)
    def wrapper(*args: Any, dsn: str | None, database: str | None, config_file: str | None,
                **kwargs: Any) -> Any:
        settings = Settings.load({"dsn": dsn, "database": database}, config_file=config_file)
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def open_store(settings: Settings, *, migrate_schema: bool = True) -> Store:
    """Open the store for a command that writes: create it, migrate the schema unless told
    not to."""
    store = Store.open(settings.dsn, settings.database)
    if migrate_schema:
        migrate(store, settings.cluster)
    return store


def open_existing_store(settings: Settings, *, migrate_schema: bool = True) -> Store:
    """Open the store for a command that reads: a store or database that does not exist is
    an error (exit 2), never created. An existing store is brought up to the current schema
    unless told not to (an auditor's read-only role cannot migrate)."""
    store = Store.open(settings.dsn, settings.database, create=False)
    if not store.scalar("EXISTS TABLE schema_migrations"):
        raise StoreNotFound(f"{store.display_dsn} (database {store.database}) holds no "
                            "genai-audit schema; create it with `genai-audit init`")
    if migrate_schema:
        migrate(store, settings.cluster)
    return store


def actor_option(func: F) -> F:
    """``--actor``: who does this (recorded with policy changes and holds)."""
    return click.option(
        "--actor", default=lambda: os.environ.get("USER") or getpass.getuser(),
        show_default="$USER", help="Who is making this change (recorded).")(func)  # type: ignore[return-value]


def utc(moment: datetime | None) -> datetime | None:
    """A click.DateTime value (naive) read as UTC."""
    return None if moment is None else moment.replace(tzinfo=UTC)


WHEN = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])


class TimeBound(click.ParamType):  # type: ignore[type-arg]
    """One convention for every period on the command line (docs: README, "Dates"):

    * a date ``YYYY-MM-DD`` is a whole UTC day: a start bound is its first instant, an end
      bound INCLUDES that day (the bound is the next midnight);
    * an ISO 8601 time is an exact instant (UTC if it names no offset): a start includes it,
      an end excludes it.

    So ``--from 2026-07-01 --to 2026-09-30`` is the third quarter, whole, in every command;
    periods are half-open ``[start, end)`` inside. ``check_period`` refuses reversed ones.
    """

    name = "DATE"

    def __init__(self, *, end: bool) -> None:
        self.end = end

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return parse_bound(str(value), end=self.end, param=param, ctx=ctx)


def parse_bound(text: str, *, end: bool, param: click.Parameter | None = None,
                ctx: click.Context | None = None) -> datetime:
    """``2024-06-30`` (a whole day: an end date includes it) or an ISO 8601 time (UTC if
    naive)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=int(end))
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time "
                                 "(YYYY-MM-DDTHH:MM[:SS][+00:00])", ctx, param) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


START, END = TimeBound(end=False), TimeBound(end=True)


def check_period(start: datetime | None, end: datetime | None, start_flag: str = "--from",
                 end_flag: str = "--to") -> None:
    """A reversed or empty period is a usage error (exit 2), not "no records"."""
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(f"{end_flag} ({end:%Y-%m-%d %H:%M}) must be after "
                                 f"{start_flag} ({start:%Y-%m-%d %H:%M}); a date given to "
                                 f"{end_flag} includes that whole day", param_hint=end_flag)
