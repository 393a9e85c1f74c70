"""``genai-audit checkpoint``: export signed checkpoints, print the ledger's public key."""

from __future__ import annotations

from pathlib import Path

import click

from genai_audit.cli.common import CommandError, open_existing_store, store_options
from genai_audit.cli.ledger_keys import store_keys
from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger.export import export_checkpoints
from genai_audit.config import Settings


@click.group("checkpoint")
def command() -> None:
    """Signed ledger checkpoints: export them for anchoring, show the public key.

    \b
    Examples:
      genai-audit checkpoint export -o anchors-2026-04-01.json
      genai-audit checkpoint pubkey -o ledger.pub
    """


@command.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write here [default: stdout].")
@click.option("--tenant", help="Only this tenant's logs.")
@store_options
def export(output: str | None, tenant: str | None, settings: Settings) -> None:
    """Write each log's latest signed checkpoint to a file kept outside the store.

    Keep the file where the store's operators cannot change it (an auditor's archive, an
    object-lock bucket). `genai-audit verify --checkpoint FILE` later proves the store still
    holds everything those checkpoints signed: no log dropped, nothing cut off its end.
    """
    key = store_keys(settings).signing_key().public_key()
    store = open_existing_store(settings)
    try:
        text = export_checkpoints(store, key, tenant) + "\n"
    except notes.NoteError as exc:
        raise CommandError(str(exc)) from None
    if output:
        Path(output).write_text(text, "utf-8")
        click.echo(f"wrote checkpoints to {output}", err=True)
    else:
        click.echo(text, nl=False)


@command.command("pubkey")
@click.option("--format", "fmt", type=click.Choice(["pem", "note"]), default="pem",
              show_default=True, help="PEM, or the signed-note verifier key string.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write here [default: stdout].")
@store_options
def pubkey(fmt: str, output: str | None, settings: Settings) -> None:
    """Print the ledger's Ed25519 public key: give it to auditors for verify-proof."""
    key = store_keys(settings).signing_key().public_key()
    text = notes.public_key_pem(key) if fmt == "pem" else notes.verifier_key(key) + "\n"
    if output:
        Path(output).write_text(text, "utf-8")
        click.echo(f"wrote public key to {output}", err=True)
    else:
        click.echo(text, nl=False)
