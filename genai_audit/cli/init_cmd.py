"""``genai-audit init``: create or migrate the schema (idempotent)."""

from __future__ import annotations

import click

from genai_audit.cli.common import open_store, store_options
from genai_audit.clickhouse.cluster import for_cluster
from genai_audit.clickhouse.dsn import resolve_database
from genai_audit.clickhouse.ledger.checkpoint import verifier_key
from genai_audit.clickhouse.migrate import (
    BOOTSTRAP,
    available_migrations,
    cluster_statements,
    migrate,
    schema_version,
)
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore


@click.command("init")
@click.option("--cluster", metavar="NAME",
              help="A ClickHouse cluster (remote_servers): every statement runs ON CLUSTER, "
                   "tables are Replicated*MergeTree, readers get Distributed <table>_all "
                   "[env GENAI_AUDIT_CLUSTER].")
@click.option("--print-sql", is_flag=True,
              help="Print every statement of every migration (for --cluster: as it runs on "
                   "the cluster) and exit without connecting: for a DBA to review or apply.")
@store_options
def command(cluster: str | None, print_sql: bool, settings: Settings) -> None:
    """Create or migrate the audit schema and the keystore. Safe to run again.

    Applies only the missing migrations. The keystore (keys never live in ClickHouse) is
    created beside an embedded store, or in GENAI_AUDIT_KEYSTORE_DIR (keystore_dir); its
    master key comes from GENAI_AUDIT_MASTER_KEY or a key file (mode 0600) that is
    generated here if absent.

    The keystore also holds the Ed25519 key that signs ledger checkpoints; its public key is
    printed here (and by `genai-audit checkpoint pubkey`).

    On a cluster, give --cluster (or set cluster in the settings, so the exporter's and the
    gateway's own migrations run the same way); ClickHouse Cloud takes the plain DDL. See
    docs/deploy.md.

    \b
    Examples:
      genai-audit init
      genai-audit init --dsn http://writer:secret@clickhouse:8123
      genai-audit init --dsn http://admin:secret@ch-1:8123 --cluster audit
      genai-audit init --cluster audit --print-sql > schema.sql
    """
    settings = settings.with_overrides({"cluster": cluster})
    if print_sql:
        click.echo(format_sql(settings))
        return
    store = open_store(settings, migrate_schema=False)
    applied = migrate(store, settings.cluster)
    for m in applied:
        click.echo(f"applied {m.version:03d}_{m.name}")
    keys = open_keystore(settings)
    kek = keys.ensure_master_key()
    click.echo(f"keystore {keys.path} (master key {kek.key_id})")
    click.echo(f"schema at version {schema_version(store)} in {store.display_dsn} "
               f"(database {store.database})" + ("" if applied else ", already up to date")
               + (f", cluster {settings.cluster}" if settings.cluster else ""))
    click.echo(f"ledger signing key: {verifier_key(keys.signing_key().public_key())}")


def format_sql(settings: Settings) -> str:
    """Every migration statement, in order, as it would run (``;``-terminated)."""
    database = resolve_database(settings.database)
    bootstrap = (for_cluster(BOOTSTRAP, settings.cluster, database) if settings.cluster
                 else [BOOTSTRAP.strip()])
    lines = ["-- schema_migrations (the record of applied migrations)",
             *(statement + ";" for statement in bootstrap)]
    for migration in available_migrations():
        lines.append(f"-- {migration.version:03d}_{migration.name}")
        statements = (cluster_statements(migration, settings.cluster, database)
                      if settings.cluster else migration.statements())
        lines += [statement + ";" for statement in statements]
    return "\n".join(lines)
