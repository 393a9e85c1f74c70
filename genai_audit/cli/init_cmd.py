"""``genai-audit init``: create or migrate the schema (idempotent)."""

from __future__ import annotations

import click

from genai_audit.cli.common import open_store, store_options
from genai_audit.clickhouse.ledger.checkpoint import verifier_key
from genai_audit.clickhouse.migrate import schema_version
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore


@click.command("init")
@store_options
def command(settings: Settings) -> None:
    """Create or migrate the audit schema and the keystore. Safe to run again.

    Applies only the missing migrations. The keystore (keys never live in ClickHouse) is
    created beside an embedded store, or in GENAI_AUDIT_KEYSTORE_DIR (keystore_dir); its
    master key comes from GENAI_AUDIT_MASTER_KEY or a key file (mode 0600) that is
    generated here if absent.

    The keystore also holds the Ed25519 key that signs ledger checkpoints; its public key is
    printed here (and by `genai-audit checkpoint pubkey`).

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
    keys = open_keystore(settings)
    kek = keys.ensure_master_key()
    click.echo(f"keystore {keys.path} (master key {kek.key_id})")
    click.echo(f"schema at version {schema_version(store)} in {store.display_dsn} "
               f"(database {store.database})" + ("" if applied else ", already up to date"))
    click.echo(f"ledger signing key: {verifier_key(keys.signing_key().public_key())}")
