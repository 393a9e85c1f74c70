"""``genai-audit``: the command line. Each command lives in its own module."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from genai_audit.cli.exit_codes import EXIT_ERROR
from genai_audit.clickhouse.errors import StoreError
from genai_audit.config import SettingsError
from genai_audit.neutralize import visible

# name -> (module under genai_audit.cli, the short help `--help` lists). A command's module
# is imported only when that command runs (or its own --help is asked for): `genai-audit
# --help` must not pay for the store driver, the OTel SDK and openai. A test checks that each
# short help here is the one the command itself declares.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init_cmd", "Create or migrate the audit schema and the keystore."),
    "demo": ("demo_cmd", "Run the whole product once, locally, with nothing to configure."),
    "query": ("query_cmd", "Run one read-only query (SELECT / WITH, SHOW, DESCRIBE) against the "
                           "audit store."),
    "report": ("report_cmd", "Build the auditor's report: SOC2 activity, PII controls, cost "
                             "attribution,..."),
    "pseudonym": ("pseudonym_cmd", "Print the pseudonymous user key "
                                   "(gdpr_pseudonymized_user_key) of one user."),
    "serve": ("serve_cmd", "Run the OTLP gateway: spans from any language -> the audit "
                           "pipeline -> the..."),
    "settings": ("settings_cmd", "Show the effective settings and the source of each value."),
    "retention": ("retention_cmd", "Per-tenant retention: how long records (and, optionally, "
                                   "their content) are..."),
    "hold": ("hold_cmd", "Legal holds: held records survive their retention until the hold is "
                         "released."),
    "archive": ("archive_cmd", "Archive records older than the hot window as Parquet, one "
                               "object per tenant..."),
    "maintain": ("maintain_cmd", "Run retention housekeeping once; exit 0 if all is well, 1 "
                                 "if a step failed or..."),
    "erase": ("erase_cmd", "GDPR Art. 17 erasure of one data subject (crypto-shredding)."),
    "show": ("show_cmd", "Read decrypted content; every read is logged as a disclosure."),
    "disclosures": ("disclosures_cmd", "List who read decrypted content of a tenant's records, "
                                       "when, and why."),
    "rbac": ("rbac_cmd", "Print ClickHouse SQL for the writer, auditor and admin roles "
                         "(nothing is..."),
    "keys": ("keys_cmd", "The keystore: status, master key rotation."),
    "verify": ("verify_cmd", "Check the tamper-evident ledger: every record against the signed "
                             "checkpoints."),
    "prove": ("prove_cmd", "Write an inclusion proof for one record: its leaf, audit path and "
                           "signed..."),
    "verify-proof": ("verify_proof_cmd", "Check an inclusion proof written by `genai-audit "
                                         "prove`, without the store."),
    "checkpoint": ("checkpoint_cmd", "Signed ledger checkpoints: export them for anchoring, "
                                     "show the public key."),
    "budget": ("budget_cmd", "Monthly budgets of the pre-LLM guard's limiter (docs/limits.md)."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented lazy pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"genai_audit.cli.{COMMANDS[cmd_name][0]}")
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def _environment_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the environment's, not a bug: exit 2 with one line. The keystore's
    error type is known only once a command imported the keystore."""
    found: list[type[BaseException]] = [StoreError, SettingsError, OSError]
    keystore: Any = sys.modules.get("genai_audit.keystore")
    if keystore is not None:
        found.append(keystore.KeyStoreError)
    return tuple(found)


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
    except Exception as exc:
        if not isinstance(exc, _environment_errors()):
            raise
        click.echo(visible(f"genai-audit: error: {exc}"), err=True)  # may quote stored text
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
