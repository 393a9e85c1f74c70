"""``genai-audit verify``: check the tamper-evident ledger; name every bad record."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from genai_audit.cli.archive_cmd import check_archive
from genai_audit.cli.common import (
    END,
    EXIT_PROBLEM,
    START,
    CommandError,
    check_period,
    open_existing_store,
    store_options,
)
from genai_audit.cli.ledger_keys import public_key
from genai_audit.clickhouse.ledger.export import read_anchors
from genai_audit.clickhouse.ledger.leaf import SCHEMAS
from genai_audit.clickhouse.ledger.verify import Finding, Verifier, VerifyResult, unsigned_grace
from genai_audit.clickhouse.tenants import require_known_tenant
from genai_audit.clock import SYSTEM_CLOCK
from genai_audit.config import Settings
from genai_audit.neutralize import visible

MAX_LISTED = 200


def format_finding(f: Finding) -> str:
    where = f"position {f.position}" if f.position is not None else "-"
    record = f"record {f.record_id}" if f.record_id else "record ?"
    return (f"{f.kind.upper():<10} {f.table or '?'}  {f.log_id or '(no log)'}  {where}  "
            f"{record}: {f.detail}")


def format_result(result: VerifyResult, seconds: float) -> str:
    rate = f", {result.records / seconds:,.0f} records/s" if seconds > 0 else ""
    lines = [f"{'TAMPERED' if result.findings else 'INTACT'}: {result.records:,} records in "
             f"{result.logs:,} logs, {result.checkpoints:,} checkpoints checked in "
             f"{seconds:.2f}s{rate}"]
    lines += [f"  {table:<17} {n.records:>12,} records {n.logs:>8,} logs "
              f"{n.checkpoints:>9,} checkpoints" for table, n in result.tables.items()]
    for f in result.findings[:MAX_LISTED]:
        lines.append(format_finding(f))
    if len(result.findings) > MAX_LISTED:
        lines.append(f"... and {len(result.findings) - MAX_LISTED} more (use --format json)")
    for w in result.warnings[:MAX_LISTED]:
        lines.append("warning: " + format_finding(w))
    return visible("\n".join(lines))  # log ids and details can quote stored values


def format_json(result: VerifyResult, seconds: float) -> str:
    def as_dict(f: Finding) -> dict[str, object]:
        return {"kind": f.kind, "table": f.table, "log_id": f.log_id, "position": f.position,
                "record_id": f.record_id, "detail": f.detail}
    return json.dumps({"intact": result.ok, "records": result.records, "logs": result.logs,
                       "checkpoints": result.checkpoints, "seconds": round(seconds, 3),
                       "tables": {t: {"records": n.records, "logs": n.logs,
                                      "checkpoints": n.checkpoints}
                                  for t, n in result.tables.items()},
                       "findings": [as_dict(f) for f in result.findings],
                       "warnings": [as_dict(w) for w in result.warnings]}, indent=2)


@click.command("verify")
@click.option("--tenant", help="Only the logs of this tenant.")
@click.option("--table", "tables", multiple=True, type=click.Choice(list(SCHEMAS)),
              help="Only this ledgered table (repeatable) [default: all of them].")
@click.option("--from", "since", type=START, help="Only logs with records from this date "
              "or time (UTC) on (interactions by event time, erasures by erasure time, "
              "access log by access time); each such log is verified whole.")
@click.option("--to", "until", type=END, help="...and up to this date (included) or time.")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, exists=True),
              help="Checkpoints exported earlier (genai-audit checkpoint export): the store "
              "must still contain everything they signed.")
@click.option("--pubkey", type=click.Path(dir_okay=False, exists=True),
              help="Public key (PEM or signed-note verifier key) to check signatures with "
              "[default: the store's own keystore].")
@click.option("--strict", is_flag=True, help="Fail on records not yet covered by a signed "
              "checkpoint even when they are younger than twice ledger_checkpoint_seconds "
              "(+30 s) (use when writers are stopped).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--archive", "archive_url", metavar="URL",
              help="Verify an archive (s3://bucket/prefix or file:///dir) instead of the live "
                   "ledger: manifest signature, every object's SHA-256 and its rows, and every "
                   "archived row's leaf against the ledger's signed checkpoints.")
@store_options
@click.pass_context
def command(ctx: click.Context, tenant: str | None, tables: tuple[str, ...],
            since: datetime | None,
            until: datetime | None, checkpoint_file: str | None, pubkey: str | None,
            strict: bool, fmt: str, archive_url: str | None, settings: Settings) -> None:
    """Check the tamper-evident ledger: every record against the signed checkpoints.

    Covers every ledgered table: interactions, subject_erasures (GDPR erasure tombstones)
    and access_log (disclosures). Recomputes each record's leaf hash from its stored
    columns (in ClickHouse) and each log's Merkle root, and checks them against the
    Ed25519-signed checkpoints. Exit 0 when intact; exit 1 listing each bad record
    (table, log, position, id) and what happened to it:
    modified, deleted, inserted, reordered, truncated, a checkpoint altered or deleted, or
    records still unsigned twice the checkpoint interval (+30 s) after they arrived; exit 2
    on errors. Records gone after the expiry their checkpoint signed are an EXPIRED note
    (exit 0), unless a legal hold still covers them. See docs/ledger.md for what this does
    and does not prove.

    \b
    Examples:
      genai-audit verify
      genai-audit verify --tenant acme --from 2026-01-01 --to 2026-04-01
      genai-audit verify --table subject_erasures --table access_log --strict
      genai-audit verify --checkpoint anchors.json --pubkey ledger.pub --strict
      genai-audit verify --archive s3://audit-archive/prod
    """
    check_period(since, until)
    if archive_url:
        if not check_archive(archive_url, pubkey, settings):
            ctx.exit(EXIT_PROBLEM)
        return
    key_name, key = public_key(settings, pubkey)
    anchors: list[tuple[str, str]] = []
    if checkpoint_file:
        try:
            anchors = read_anchors(Path(checkpoint_file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"{checkpoint_file}: {exc}") from None
    store = open_existing_store(settings)
    require_known_tenant(store, tenant)
    schemas = [SCHEMAS[t] for t in (tables or SCHEMAS)]
    total = Verifier(store, key, key_name, schemas).total_records(tenant)
    started = time.monotonic()
    with click.progressbar(length=max(total, 1), label="verifying", file=sys.stderr,
                           show_pos=True) as bar:
        verifier = Verifier(store, key, key_name, schemas, progress=bar.update,
                            clock=SYSTEM_CLOCK,
                            unsigned_grace=unsigned_grace(settings.ledger_checkpoint_seconds))
        result = verifier.run(tenant=tenant, since=since, until=until,
                              anchors=anchors, strict=strict)
    seconds = time.monotonic() - started
    click.echo(format_json(result, seconds) if fmt == "json" else format_result(result, seconds))
    if not result.ok:
        ctx.exit(EXIT_PROBLEM)
