"""``genai-audit disclosures``: the accounting of disclosures (HIPAA 164.528)."""

from __future__ import annotations

from datetime import datetime

import click

from genai_audit.cli.common import (
    END,
    EXIT_PROBLEM,
    START,
    check_period,
    open_existing_store,
    store_options,
)
from genai_audit.cli.erase_cmd import read_user
from genai_audit.cli.formats import FORMATTERS
from genai_audit.clickhouse.disclosure import list_disclosures
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore
from genai_audit.processor.pseudonym import pseudonym_of


@click.command("disclosures")
@click.option("--tenant", required=True, help="Tenant whose disclosures to list.")
@click.option("--user", help="Only disclosures of this user's records (user id; '-' = stdin).")
@click.option("--user-key", help="Only disclosures of this pseudonym.")
@click.option("--from", "--since", "since", type=START,
              help="From this date or time (UTC).")
@click.option("--to", "--until", "until", type=END,
              help="...up to this date (included) or time.")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATTERS)), default="table",
              show_default=True)
@store_options
@click.pass_context
def command(ctx: click.Context, tenant: str, user: str | None, user_key: str | None,
            since: datetime | None, until: datetime | None, fmt: str,
            settings: Settings) -> None:
    """List who read decrypted content of a tenant's records, when, and why.

    Every `genai-audit show` (the one path to plaintext) appends to access_log;
    this prints that accounting, oldest first. With --user the user id is mapped to its
    pseudonym through the keystore (an erased or unknown user cannot be mapped: exit 1).

    \b
    Examples:
      genai-audit disclosures --tenant acme
      genai-audit disclosures --tenant acme --user alice@example.com --format json
      genai-audit disclosures --tenant acme --from 2026-01-01 --format csv
    """
    if user is not None and user_key is not None:
        raise click.UsageError("give --user or --user-key, not both")
    check_period(since, until)
    store = open_existing_store(settings)
    if user is not None:
        user_key = pseudonym_of(open_keystore(settings, create=False), tenant, read_user(user))
        if user_key is None:
            click.echo(f"unknown subject: tenant {tenant} has no live data subject with this "
                       "user id (never seen, or erased)")
            ctx.exit(EXIT_PROBLEM)
    columns, rows = list_disclosures(store, tenant, user_key, since, until)
    click.echo(FORMATTERS[fmt](columns, rows))
