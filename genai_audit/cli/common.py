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
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.neutralize import visible

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_PROBLEM, EXIT_ERROR = 0, 1, 2


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
    """Open the store; create or migrate the schema unless told not to."""
    store = Store.open(settings.dsn, settings.database)
    if migrate_schema:
        migrate(store)
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
