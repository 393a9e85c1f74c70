"""``genai-audit rbac``: print least-privilege ClickHouse roles, grants and row policies."""

from __future__ import annotations

import click

from genai_audit.cli.common import CommandError, store_options
from genai_audit.clickhouse.dsn import resolve_database
from genai_audit.clickhouse.errors import ConfigError
from genai_audit.clickhouse.rbac import format_rbac
from genai_audit.config import Settings


@click.command("rbac")
@click.option("--tenant", "tenants", multiple=True,
              help="Create an auditor role restricted to this tenant (repeatable). Without "
                   "it: one cross-tenant auditor role.")
@store_options
def command(tenants: tuple[str, ...], settings: Settings) -> None:
    """Print ClickHouse SQL for the writer, auditor and admin roles (nothing is executed).

    \b
    genai_audit_writer   exporter / gateway: INSERT into interactions, nothing else
    genai_audit_auditor  SELECT on views and audit tables, interactions without the
                         ciphertext columns; rows only through a per-tenant row policy
    genai_audit_admin    init, erase, show: create / insert / select, never
                         ALTER UPDATE/DELETE, TRUNCATE or DROP TABLE

    \b
    Examples:
      genai-audit rbac > roles.sql
      genai-audit rbac --tenant acme --tenant globex --database audit | clickhouse-client -n
    """
    try:
        click.echo(format_rbac(resolve_database(settings.database), tenants), nl=False)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
