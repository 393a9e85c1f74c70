"""``genai-audit prove``: an inclusion proof of one record, checkable without the store."""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from genai_audit.cli.common import EXIT_PROBLEM, CommandError, open_existing_store, store_options
from genai_audit.cli.ledger_keys import public_key
from genai_audit.clickhouse.ledger.leaf import SCHEMAS
from genai_audit.clickhouse.ledger.proof import ProofError, build_proof, dumps
from genai_audit.config import Settings


@click.command("prove")
@click.option("--id", "record_id", required=True,
              help="The record's id (UUID): interactions.id, subject_erasures.erasure_id or "
                   "access_log.access_id.")
@click.option("--table", type=click.Choice(list(SCHEMAS)), default="interactions",
              show_default=True, help="The ledgered table the record is in.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the proof here [default: stdout].")
@store_options
@click.pass_context
def command(ctx: click.Context, record_id: str, table: str, output: str | None,
            settings: Settings) -> None:
    """Write an inclusion proof for one record: its leaf, audit path and signed checkpoint.

    Anyone with the proof file and the ledger's public key can check it offline with
    `genai-audit verify-proof` (or by hand: docs/ledger.md). Exit 1 if the record no longer
    matches what was signed, or is not covered by a checkpoint yet.

    A proof of an erasure tombstone is the data subject's (or the DPO's) signed receipt that
    the erasure is on record; a proof of an access-log row shows a disclosure was logged.

    \b
    Examples:
      genai-audit prove --id 3f2b...-... -o proof.json
      genai-audit prove --table subject_erasures --id 9c41...-... -o erasure-receipt.json
      genai-audit checkpoint pubkey -o ledger.pub
      genai-audit verify-proof proof.json --pubkey ledger.pub
    """
    try:
        uuid.UUID(record_id)
    except ValueError:
        raise CommandError(f"--id: not a UUID: {record_id!r}") from None
    _, key = public_key(settings, None)
    store = open_existing_store(settings)
    try:
        doc = build_proof(store, record_id, key, SCHEMAS[table])
    except ProofError as exc:
        click.echo(f"genai-audit: cannot prove: {exc}", err=True)
        ctx.exit(EXIT_PROBLEM)
        return
    text = dumps(doc) + "\n"
    if output:
        Path(output).write_text(text, "utf-8")
        click.echo(f"wrote inclusion proof of {record_id} (position {doc['leaf_index']} of "
                   f"{doc['tree_size']} in {doc['log_id']}) to {output}", err=True)
    else:
        click.echo(text, nl=False)
