"""``genai-audit``: the command line. Each command lives in its own module."""

from __future__ import annotations

import sys

import click

from genai_audit.cli import (
    archive_cmd,
    budget_cmd,
    checkpoint_cmd,
    demo_cmd,
    disclosures_cmd,
    erase_cmd,
    hold_cmd,
    init_cmd,
    keys_cmd,
    maintain_cmd,
    prove_cmd,
    pseudonym_cmd,
    query_cmd,
    rbac_cmd,
    report_cmd,
    retention_cmd,
    serve_cmd,
    settings_cmd,
    show_cmd,
    verify_cmd,
    verify_proof_cmd,
)
from genai_audit.cli.common import EXIT_ERROR
from genai_audit.clickhouse.errors import StoreError
from genai_audit.config import SettingsError
from genai_audit.keystore import KeyStoreError

COMMANDS = [init_cmd, demo_cmd, query_cmd, report_cmd, pseudonym_cmd, serve_cmd, settings_cmd,
            retention_cmd, hold_cmd, archive_cmd, maintain_cmd, erase_cmd, show_cmd,
            disclosures_cmd, rbac_cmd, keys_cmd, verify_cmd, prove_cmd, verify_proof_cmd,
            checkpoint_cmd, budget_cmd]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="genai-audit")
def cli() -> None:
    """genai-audit: the compliance archive for LLM applications.

    Every LLM call your services make becomes one audit record: PII-redacted,
    encrypted, cost-attributed, tamper-evident, kept for its retention period and
    reportable in seconds. Start with `genai-audit demo`.

    \b
    Store:   --dsn or GENAI_AUDIT_DSN (default: embedded chDB at ./genai-audit-data)
    Config:  flags > GENAI_AUDIT_* environment > genai-audit.toml > defaults
    Exit:    0 ok, 1 a check found a problem, 2 usage or environment error
    """


for _module in COMMANDS:
    cli.add_command(_module.command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (checks exit 1 through ``ctx.exit(1)``)."""
    try:
        result = cli.main(args=argv, prog_name="genai-audit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("genai-audit: aborted", err=True)
        return EXIT_ERROR
    except click.ClickException as exc:  # usage errors and CommandError
        exc.show()
        return EXIT_ERROR
    except (StoreError, SettingsError, KeyStoreError, OSError) as exc:
        click.echo(f"genai-audit: error: {exc}", err=True)
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
