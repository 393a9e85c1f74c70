"""``genai-audit show``: read decrypted content, logged as a disclosure (HIPAA 164.528)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import click

from genai_audit.cli.common import (
    END,
    EXIT_PROBLEM,
    START,
    CommandError,
    check_period,
    open_existing_store,
    store_options,
)
from genai_audit.cli.erase_cmd import read_user
from genai_audit.clickhouse.disclosure import (
    DisclosedRecord,
    DisclosureRefused,
    ReadState,
    disclose,
    subject_record_ids,
)
from genai_audit.clickhouse.reports.render.common import plain
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore
from genai_audit.neutralize import json_text, visible
from genai_audit.processor.pseudonym import pseudonym_of

_STATE_NOTE = {
    ReadState.DISCLOSED: "decrypted",
    ReadState.ERASED: "erased (GDPR Art. 17)",
    ReadState.PLAINTEXT: "stored unencrypted",
    ReadState.NO_CONTENT: "no content stored (withheld or not captured)",
    ReadState.KEY_MISSING: "KEY MISSING: the keystore has no key for this record",
    ReadState.TAMPERED: "TAMPERED: the ciphertext does not open for this record",
}


def format_records(records: Sequence[DisclosedRecord]) -> str:
    blocks = []
    for r in records:
        check = {True: "ok", False: "MISMATCH", None: "n/a"}[r.commitment_ok]
        lines = [f"record {r.id}  tenant {r.tenant_id}  pseudonym {r.user_key or '-'}",
                 f"  time {r.event_timestamp.isoformat(sep=' ')} UTC  tool {r.tool_name}  "
                 f"model {r.model}",
                 f"  content: {_STATE_NOTE[r.state]}  commitments: {check}"]
        if r.prompt_text is not None:
            lines += [f"  prompt:   {r.prompt_text}", f"  response: {r.response_text}"]
        blocks.append(visible("\n".join(lines)))  # stored text is shown, never obeyed
    return "\n\n".join(blocks)


def format_json(records: Sequence[DisclosedRecord]) -> str:
    return json_text([{k: plain(v.value if isinstance(v, ReadState) else v)
                       for k, v in vars(r).items()} for r in records], indent=2)


def _check_selection(record_ids: tuple[str, ...], tenant: str | None, user: str | None,
                     user_key: str | None) -> None:
    if bool(record_ids) == (tenant is not None):
        raise click.UsageError("give --id, or --tenant with --user / --user-key")
    if tenant is not None and (user is None) == (user_key is None):
        raise click.UsageError("with --tenant give exactly one of --user, --user-key")
    if tenant is None and (user is not None or user_key is not None):
        raise click.UsageError("--user / --user-key need --tenant")
    for record_id in record_ids:
        try:
            uuid.UUID(record_id)
        except ValueError:
            raise CommandError(f"--id {record_id!r} is not a UUID") from None


@click.command("show", short_help="Read decrypted content; every read is logged as a disclosure.")
@click.option("--id", "record_ids", multiple=True,
              help="Record id (UUID); repeat for several.")
@click.option("--tenant", help="With --user or --user-key: read that subject's records.")
@click.option("--user", help="The subject's user id ('-' reads it from stdin).")
@click.option("--user-key", help="The subject's pseudonym.")
@click.option("--from", "--since", "since", type=START,
              help="Subject's records from this date or time (UTC).")
@click.option("--to", "--until", "until", type=END,
              help="...up to this date (included) or time.")
@click.option("--pii-only", is_flag=True, help="Only records flagged has_pii_detected.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="At most this many of the subject's records.")
@click.option("--actor", required=True, help="Who reads (recorded in access_log).")
@click.option("--purpose", required=True, help="Why (recorded in access_log).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@store_options
@click.pass_context
def command(ctx: click.Context, record_ids: tuple[str, ...], tenant: str | None,
            user: str | None, user_key: str | None, since: datetime | None,
            until: datetime | None, pii_only: bool, limit: int, actor: str, purpose: str,
            fmt: str, settings: Settings) -> None:
    """Decrypt and print records' content; every read is logged as a disclosure.

    The only way to read content: it is stored encrypted per data subject and the
    llm_interaction_audit view shows it as NULL. Before anything is printed, one row per
    tenant is appended to access_log (who, when, why, which records), the accounting of
    disclosures HIPAA 164.528 asks for; list it with `genai-audit disclosures`. Content
    is checked against its stored commitments. Erased subjects read as
    [DATA ERASED PER GDPR ARTICLE 17].

    Exit 1 if an id matches no record, a record's key is missing, its ciphertext does not
    open (tampered or moved) or its content does not match its commitments.

    Instead of ids, --tenant with --user (or --user-key) reads one data subject's records,
    optionally within --from/--to and only those with PII: a GDPR Art. 15 access
    request, or the auditor's "all prompts of user X in Q3 that contained PII".

    \b
    Examples:
      genai-audit show --id 7f0c...e1 --actor dr.lee --purpose "incident INC-42 review"
      genai-audit show --tenant acme --user alice@example.com --from 2026-07-01 \
          --to 2026-09-30 --pii-only --actor auditor-kim --purpose "SOC2 Q3 sample"
    """
    _check_selection(record_ids, tenant, user, user_key)
    check_period(since, until)
    store = open_existing_store(settings)
    keys = open_keystore(settings, create=False)
    if tenant is not None:
        if user is not None:
            user_key = pseudonym_of(keys, tenant, read_user(user))
            if user_key is None:
                click.echo(f"unknown subject: tenant {tenant} has no live data subject with "
                           "this user id (never seen, or erased)", err=True)
                ctx.exit(EXIT_PROBLEM)
        assert user_key is not None
        record_ids = tuple(subject_record_ids(store, tenant, user_key, since=since,
                                              until=until, pii_only=pii_only,
                                              limit=limit))
        if not record_ids:
            click.echo("no records of this subject match", err=True)
            ctx.exit(EXIT_PROBLEM)
    try:
        records = disclose(store, keys, record_ids, actor=actor, purpose=purpose,
                           channel="show")
    except DisclosureRefused as exc:
        raise CommandError(str(exc)) from exc
    click.echo(format_json(records) if fmt == "json" else format_records(records))
    found = {str(uuid.UUID(r.id)) for r in records}
    missing = [i for i in record_ids if str(uuid.UUID(i)) not in found]
    for record_id in missing:
        click.echo(f"genai-audit: no record {record_id}", err=True)
    if missing or any(r.state in (ReadState.KEY_MISSING, ReadState.TAMPERED)
                      or r.commitment_ok is False for r in records):
        ctx.exit(EXIT_PROBLEM)
