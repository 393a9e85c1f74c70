"""``genai-audit erase``: GDPR Art. 17 erasure of one data subject (crypto-shredding)."""

from __future__ import annotations

import getpass
import json
import sys

import click

from genai_audit.cli.common import EXIT_PROBLEM, CommandError, open_store, store_options
from genai_audit.clickhouse.erasure import (
    REASONS,
    ErasureError,
    ErasureResult,
    ErasureStatus,
    erase_subject,
)
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore


def format_result(result: ErasureResult) -> str:
    if result.status is ErasureStatus.ERASED:
        return (f"erased: tenant {result.tenant_id}, pseudonym {result.user_key}: "
                f"{result.records_affected} record(s) now read as erased; metadata kept\n"
                f"erasure {result.erasure_id}, request {result.request_id}, "
                f"at {result.erased_at}\n"
                "the tombstone is signed into the tamper-evident ledger; its receipt: "
                f"genai-audit prove --table subject_erasures --id {result.erasure_id}")
    if result.status is ErasureStatus.ALREADY_ERASED:
        return (f"already erased: request {result.request_id} of tenant {result.tenant_id} "
                f"was carried out at {result.erased_at} (erasure {result.erasure_id}, "
                f"{result.records_affected} record(s)); nothing to do")
    if result.status is ErasureStatus.HELD:
        return (f"not erased: tenant {result.tenant_id}, pseudonym {result.user_key} is under "
                f"legal hold {', '.join(result.held_by)} (GDPR Art. 17(3)(e)); release the "
                "hold, then erase")
    return (f"no live data subject: tenant {result.tenant_id} has no data subject with this "
            "user id: never seen, or already erased (erasure keeps nothing that could tell "
            "which); nothing was erased. To confirm an earlier erasure, run again with its "
            "--request-id (its erasure id if none was given)")


def read_user(user: str) -> str:
    """The user id: the argument, or stdin for ``-`` (keeps it out of ps and shell history)."""
    value = sys.stdin.readline().rstrip("\r\n") if user == "-" else user
    if not value.strip():
        raise CommandError("--user: empty user id")
    return value


@click.command("erase", short_help="GDPR Art. 17 erasure of one data subject (crypto-shredding).")
@click.option("--tenant", required=True, help="Tenant the data subject belongs to.")
@click.option("--user", required=True,
              help="The subject's user id as the application sent it; '-' reads it from stdin.")
@click.option("--reason", required=True, type=click.Choice(sorted(REASONS)),
              help="GDPR Art. 17(1) ground (a code, so the tombstone holds no personal data).")
@click.option("--request-id", help="Your ticket / request reference [default: the erasure id].")
@click.option("--operator", default=lambda: getpass.getuser(), show_default="$USER",
              help="Who carries out the erasure (recorded in the tombstone).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@store_options
@click.pass_context
def command(ctx: click.Context, tenant: str, user: str, reason: str, request_id: str | None,
            operator: str, fmt: str, settings: Settings) -> None:
    """Erase one data subject (GDPR Art. 17) by destroying their keys.

    Deletes the subject's data key and pseudonym mapping from the keystore and appends a
    tombstone to subject_erasures, signed into the tamper-evident ledger before the key is
    destroyed (`genai-audit prove --table subject_erasures --id ERASURE_ID` gives its
    receipt; `genai-audit verify` names a tombstone deleted, edited or forged). Audit
    rows are never updated or deleted: their content stays as ciphertext nobody can open
    (it reads as [DATA ERASED PER GDPR ARTICLE 17]), their metadata (tokens, cost, tool,
    time) stays, so reports still add up and the ledger still verifies.

    Idempotent by request id: a second run with the same --request-id reports "already
    erased" (exit 0). Otherwise a user id with no live data subject is reported as unknown
    (exit 1), never as success: after an erasure nothing links the user id to the erased
    subject, so "never seen" and "already erased" cannot be told apart.

    \b
    Reasons:
      subject-request, no-longer-necessary, consent-withdrawn, objection,
      unlawful-processing, legal-obligation, child-consent
    \b
    Examples:
      genai-audit erase --tenant acme --user alice@example.com --reason subject-request \\
          --request-id DSR-2041 --operator dpo
      printf '%s\\n' "$USER_ID" | genai-audit erase --tenant acme --user - --reason objection
    """
    user_id = read_user(user)
    store = open_store(settings)
    try:
        result = erase_subject(store, open_keystore(settings, create=False), tenant_id=tenant,
                               user_id=user_id, reason=reason, operator=operator,
                               request_id=request_id)
    except ErasureError as exc:
        raise CommandError(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps({"status": result.status.value, "tenant_id": result.tenant_id,
                               "erasure_id": result.erasure_id,
                               "request_id": result.request_id, "user_key": result.user_key,
                               "records_affected": result.records_affected,
                               "erased_at": result.erased_at,
                               "held_by": list(result.held_by)}))
    else:
        click.echo(format_result(result))
    if result.status in (ErasureStatus.UNKNOWN, ErasureStatus.HELD):
        ctx.exit(EXIT_PROBLEM)
