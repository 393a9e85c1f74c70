"""``genai-audit settings``: the effective configuration and where each value came from."""

from __future__ import annotations

import os

import click

from genai_audit.cli.common import store_options
from genai_audit.cli.formats import FORMATTERS
from genai_audit.clickhouse.dsn import redact_dsn, resolve_database, resolve_dsn
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import default_spool_dir
from genai_audit.keystore import default_keystore_dir
from genai_audit.masterkey import ENV_MASTER_KEY, MASTER_KEY_FILE


def settings_rows(settings: Settings) -> list[tuple[str, str, str]]:
    """(setting, effective value, source) for every setting; secrets never shown."""
    rows = []
    for name, (value, source) in settings.describe().items():
        if name == "dsn":
            value = redact_dsn(resolve_dsn(value))
        elif name == "database":
            value = resolve_database(value)
        elif name == "keystore_dir":
            value = str(default_keystore_dir(settings))
        elif name == "master_key_file":  # where the key comes from, never the key itself
            value = (f"(unused: {ENV_MASTER_KEY} is set)" if os.environ.get(ENV_MASTER_KEY)
                     else str(value or default_keystore_dir(settings) / MASTER_KEY_FILE))
        elif name == "spool_dir":
            value = str(default_spool_dir(settings))
        elif isinstance(value, frozenset):
            value = ",".join(sorted(value)) or "(none)"
        rows.append((name, str(value), source))
    return rows


@click.command("settings")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATTERS)), default="table",
              show_default=True)
@store_options
def command(fmt: str, settings: Settings) -> None:
    """Show the effective settings and the source of each value.

    Precedence: command-line flag > environment (GENAI_AUDIT_<NAME>) > TOML file
    (--config, $GENAI_AUDIT_CONFIG or ./genai-audit.toml) > default. Passwords in the
    DSN are masked.

    \b
    Examples:
      genai-audit settings
      GENAI_AUDIT_SYNC_TOOLS=contract_review genai-audit settings --format json
    """
    click.echo(FORMATTERS[fmt](["setting", "value", "source"], settings_rows(settings)))
