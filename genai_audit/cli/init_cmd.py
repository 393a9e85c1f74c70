"""``genai-audit init``: create or migrate the schema (idempotent)."""

from __future__ import annotations

import click

from genai_audit.cli.common import open_store, store_options
from genai_audit.clickhouse.migrate import schema_version
from genai_audit.config import Settings


@click.command("init")
@store_options
def command(settings: Settings) -> None:
    """Create or migrate the audit schema. Safe to run again: applies only what is missing.

    \b
    Examples:
      genai-audit init
      genai-audit init --dsn http://writer:secret@clickhouse:8123
    """
    store = open_store(settings, migrate_schema=False)
    from genai_audit.clickhouse.migrate import migrate

    applied = migrate(store)
    for m in applied:
        click.echo(f"applied {m.version:03d}_{m.name}")
    click.echo(f"schema at version {schema_version(store)} in {store.display_dsn} "
               f"(database {store.database})" + ("" if applied else ", already up to date"))
