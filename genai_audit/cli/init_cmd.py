"""``genai-audit init``: create or migrate the schema (idempotent)."""

from __future__ import annotations

import click

from genai_audit.cli.common import open_store, store_options
from genai_audit.cli.ledger_keys import store_keys
from genai_audit.clickhouse.ledger.checkpoint import verifier_key
from genai_audit.clickhouse.migrate import schema_version
from genai_audit.config import Settings


@click.command("init")
@store_options
def command(settings: Settings) -> None:
    """Create or migrate the audit schema. Safe to run again: applies only what is missing.

    Also creates the keystore beside the store (if missing), with the Ed25519 key that signs
    ledger checkpoints; its public key is printed (and `genai-audit checkpoint pubkey`).

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
    keys = store_keys(settings, create=True)
    click.echo(f"ledger signing key in {keys.directory}: "
               f"{verifier_key(keys.signing_key().public_key())}")
