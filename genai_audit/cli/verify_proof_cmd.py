"""``genai-audit verify-proof``: check an inclusion proof offline (no store needed)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from genai_audit.cli.common import EXIT_PROBLEM, CommandError
from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger.proof import check_proof
from genai_audit.neutralize import visible


@click.command("verify-proof")
@click.argument("proof_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--pubkey", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The ledger's public key: PEM, or the signed-note verifier key "
              "(genai-audit checkpoint pubkey).")
@click.pass_context
def command(ctx: click.Context, proof_file: str, pubkey: str) -> None:
    """Check an inclusion proof written by `genai-audit prove`, without the store.

    Rebuilds the record's leaf hash from the fields in the proof, follows the audit path to
    a Merkle root and checks that root against the Ed25519-signed checkpoint. Exit 0 when
    the proof holds, 1 when it does not (each reason listed), 2 on unreadable input.

    \b
    Example:
      genai-audit verify-proof proof.json --pubkey ledger.pub
    """
    try:
        name, key = notes.load_public_key(Path(pubkey).read_text("utf-8"))
        doc = json.loads(Path(proof_file).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read input: {exc}") from None
    problems = check_proof(doc, key, name)
    if problems:
        click.echo("PROOF FAILS")
        for problem in problems:
            click.echo(visible(f"  - {problem}"))  # the proof file is anyone's input
        ctx.exit(EXIT_PROBLEM)
        return
    click.echo(visible(f"PROOF HOLDS: record {doc['record_id']} is entry {doc['leaf_index']} "
                       f"of {doc['tree_size']} in log {doc['log_id']}, signed by {name}"))
