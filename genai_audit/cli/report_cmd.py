"""``genai-audit report``: the auditor's report for a tenant (or all) and a period."""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from genai_audit.cli.common import (
    EXIT_PROBLEM,
    CommandError,
    check_period,
    open_existing_store,
    parse_bound,
    store_options,
)
from genai_audit.clickhouse.ledger.verify import report_verifier
from genai_audit.clickhouse.reports import STEPS, Status, Verifier, build_report
from genai_audit.clickhouse.reports.render import FORMATS, render
from genai_audit.clickhouse.reports.scope import has_table
from genai_audit.clickhouse.retention import report_facts
from genai_audit.clickhouse.tenants import require_known_tenant
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore

DEFAULT_DAYS = 365


def sha256_sidecar(path: Path, digest: str) -> Path:
    """Write ``<path>.sha256`` in ``sha256sum`` format, so ``sha256sum -c`` checks the file."""
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return sidecar


@click.command("report")
@click.option("--tenant", help="Tenant to report on [default: all tenants].")
@click.option("--from", "start", metavar="DATE",
              help=f"Start (YYYY-MM-DD or ISO time, UTC) [default: {DEFAULT_DAYS} days "
                   "before --to].")
@click.option("--to", "end", metavar="DATE",
              help="End; a date includes that whole day [default: now].")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="md",
              show_default=True, help="md, html (self-contained, charts), json, or csv "
                                      "(a zip of one CSV per table).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (and its SHA-256 to FILE.sha256) instead of stdout.")
@click.option("--max-rows", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Cap on the day x tool x user x model groups listed (0: no cap); totals "
                   "always cover every record.")
@click.option("--fail-on-findings", is_flag=True,
              help="Exit 1 when any area needs attention (for scheduled checks).")
@store_options
def command(tenant: str | None, start: str | None, end: str | None, fmt: str,
            out: Path | None, max_rows: int, fail_on_findings: bool,
            settings: Settings) -> None:
    """Build the auditor's report: SOC2 activity, PII controls, cost attribution, GDPR
    erasures, HIPAA routes and disclosures, integrity, retention and control failures,
    with its provenance (store, tenant, period, schema, ledger checkpoint, verify result).

    The period is half-open [--from, --to) in UTC; a bare end date includes that day.
    With --out, the file's SHA-256 is printed and written beside it as FILE.sha256 (a file
    cannot contain its own hash); check it later with `sha256sum -c FILE.sha256`.

    \b
    Examples:
      genai-audit report --tenant acme --from 2026-07-01 --to 2026-09-30
      genai-audit report --format html --out q3.html --from 2026-07-01 --to 2026-09-30
      genai-audit report --tenant acme --format csv --out acme-q3.zip
      genai-audit report --format json --fail-on-findings > report.json
    """
    end_at = parse_bound(end, end=True) if end else datetime.now(UTC)
    start_at = parse_bound(start, end=False) if start else end_at - timedelta(days=DEFAULT_DAYS)
    check_period(start_at, end_at)
    if out is None and FORMATS[fmt].binary and sys.stdout.isatty():
        raise CommandError("--format csv is a zip file: give --out FILE.zip or redirect stdout")
    # read-only: an auditor role can run it
    store = open_existing_store(settings, migrate_schema=False)
    try:
        if not has_table(store, "interactions"):
            raise CommandError(f"no audit schema in {store.display_dsn} (database "
                               f"{store.database}): run `genai-audit init` first")
        require_known_tenant(store, tenant)
        with click.progressbar(length=len(STEPS), label="Building report", file=sys.stderr,
                               show_eta=False, item_show_func=lambda s: s) as bar:
            report = build_report(store, tenant=tenant, start=start_at, end=end_at,
                                  max_rows=max_rows, retention=report_facts,
                                  verifier=ledger_check(settings),
                                  progress=lambda step: bar.update(1, step))
    finally:
        store.close()
    data = render(report, fmt)
    digest = hashlib.sha256(data).hexdigest()
    if out is None:
        click.get_binary_stream("stdout").write(data)
        click.echo(f"sha256 {digest}", err=True)
    else:
        out.write_bytes(data)
        sidecar = sha256_sidecar(out, digest)
        click.echo(f"wrote {out} ({len(data):,} bytes), sha256 {digest} (in {sidecar.name})",
                   err=True)
    if fail_on_findings and report.overall is Status.ATTENTION:
        click.get_current_context().exit(EXIT_PROBLEM)


def ledger_check(settings: Settings) -> Verifier | None:
    """The ledger check, when this machine has the store's keystore (else: "not run")."""
    keys = open_keystore(settings, create=False)
    if not keys.path.exists():
        return None
    return report_verifier(keys.signing_key().public_key())
