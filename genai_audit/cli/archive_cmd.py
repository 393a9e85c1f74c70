"""``genai-audit archive``: old records -> signed Parquet archive; list and verify it."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from genai_audit.cli.common import WHEN, CommandError, open_store, store_options, utc
from genai_audit.cli.formats import format_table
from genai_audit.cli.ledger_keys import public_key
from genai_audit.clickhouse.archive import ArchiveRun, archive, default_cutoff, load_manifest
from genai_audit.clickhouse.archive_location import ArchiveLocation, location_from_settings
from genai_audit.clickhouse.archive_manifest import Manifest, ManifestError
from genai_audit.clickhouse.archive_verify import VerifyResult, verify_archive
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore

EPILOG = """\b
Credentials (never in the URL, never logged):
  GENAI_AUDIT_S3_ENDPOINT_URL       S3-compatible endpoint, e.g. http://minio:9000 (default AWS)
  GENAI_AUDIT_S3_ACCESS_KEY_ID      access key id
  GENAI_AUDIT_S3_SECRET_ACCESS_KEY  secret
"""


@click.group("archive", invoke_without_command=True, epilog=EPILOG)
@click.option("--to", "url",
              help="s3://bucket/prefix or file:///dir [env GENAI_AUDIT_ARCHIVE_URL].")
@click.option("--before", type=WHEN,
              help="Archive whole months before this date, UTC (default: today minus the hot "
                   "window, GENAI_AUDIT_ARCHIVE_HOT_DAYS, 60 days).")
@click.option("--settle-seconds", type=click.IntRange(min=0), default=60, show_default=True,
              help="Leave records ingested in the last N seconds for the next run.")
@store_options
@click.pass_context
def command(ctx: click.Context, url: str | None, before: datetime | None, settle_seconds: int,
            settings: Settings) -> None:
    """Archive records older than the hot window as Parquet, one object per tenant and month,
    with a manifest signed by the store's Ed25519 key (object names, row counts, SHA-256 of
    each object, digests of the archived rows).

    Idempotent and resumable: what the manifest lists is skipped, so run it as often as you
    like (`genai-audit maintain` does). Content stays encrypted as stored. Records stay in the
    store until their retention ends; the archive is an extra, verifiable copy.

    \b
    Examples:
      genai-audit archive --to s3://audit-archive/prod
      genai-audit archive --to file:///var/lib/genai-audit/archive --before 2026-01-01
      genai-audit archive list s3://audit-archive/prod
      genai-audit archive verify s3://audit-archive/prod
    """
    if ctx.invoked_subcommand is not None:
        return
    location = _location(url or settings.archive_url, settings)
    store = open_store(settings)
    cutoff = utc(before) or default_cutoff(datetime.now(UTC), settings.archive_hot_days)
    with click.progressbar(length=1, label="archiving", file=click.get_text_stream("stderr")
                           ) as bar:
        def on_group(index: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(1)

        try:
            run = archive(store, open_keystore(settings), location, before=cutoff,
                          settle_seconds=settle_seconds, on_group=on_group)
        except ManifestError as exc:
            raise CommandError(f"{location.url}: {exc}") from exc
    click.echo(format_run(run, location.url))


@command.command("list")
@click.argument("url", required=False)
@store_options
def list_cmd(url: str | None, settings: Settings) -> None:
    """List the objects the (signature-checked) manifest records.

    \b
    Example:
      genai-audit archive list s3://audit-archive/prod
    """
    location = _location(url or settings.archive_url, settings)
    try:
        manifest = load_manifest(open_store(settings), location, open_keystore(settings))
    except ManifestError as exc:
        raise CommandError(f"{location.url}: {exc}") from exc
    if manifest is None:
        raise CommandError(f"no archive manifest at {location.url}")
    click.echo(format_manifest(manifest))


@command.command("verify")
@click.argument("url", required=False)
@click.option("--pubkey", type=click.Path(exists=True, dir_okay=False),
              help="Ed25519 public key (PEM or signed-note verifier key) to check the manifest "
                   "and the ledger checkpoints with (default: the store's keystore).")
@store_options
@click.pass_context
def verify_cmd(ctx: click.Context, url: str | None, pubkey: str | None,
               settings: Settings) -> None:
    """Check the manifest signature, every object's SHA-256 and its rows, and that every
    archived row is a leaf the ledger signed: its leaf hash is recomputed from the Parquet
    and matched against the store's signed checkpoints at its log position. Each bad row is
    named (object, record id, log, position) as modified, not_in_ledger or duplicate. Exit 0
    intact, 1 a problem found (each named), 2 error. See docs/retention.md.

    \b
    Examples:
      genai-audit archive verify s3://audit-archive/prod
      genai-audit archive verify file:///mnt/archive --pubkey auditor-copy.pem
    """
    if not check_archive(url, pubkey, settings):
        ctx.exit(1)


def check_archive(url: str | None, pubkey: str | None, settings: Settings) -> bool:
    """Verify the archive at ``url`` and print the findings; True when intact.
    Shared by ``archive verify`` and ``verify --archive``."""
    location = _location(url or settings.archive_url, settings)
    key_name, public = public_key(settings, pubkey)
    store = open_store(settings)
    with click.progressbar(length=1, label="verifying", file=click.get_text_stream("stderr"),
                           show_pos=True) as bar:
        def on_object(index: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(1)

        result = verify_archive(store, location, public, key_name=key_name,
                                on_object=on_object)
    click.echo(format_verify(result))
    return result.ok


def _location(url: str | None, settings: Settings) -> ArchiveLocation:
    if not url:
        raise CommandError("no archive URL: pass --to/URL or set GENAI_AUDIT_ARCHIVE_URL")
    return location_from_settings(url, settings)


def format_run(run: ArchiveRun, url: str) -> str:
    lines = [f"archived to {url}: {len(run.written)} objects written ({run.rows} records, "
             f"{run.bytes} bytes), {run.skipped} already archived; months before "
             f"{run.cutoff:%Y-%m-%d}"]
    lines += [f"  {o.key}  {o.rows} records  sha256 {o.sha256[:16]}…" for o in run.written]
    return "\n".join(lines)


def format_manifest(manifest: Manifest) -> str:
    rows = [(o.key, o.rows, o.bytes, o.sha256[:16] + "…", o.first_event[:10], o.last_event[:10],
             o.expires_at[:10]) for o in manifest.objects]
    table = format_table(["object", "records", "bytes", "sha256", "first", "last", "expires"],
                         rows)
    checkpoint = "none yet" if manifest.ledger_checkpoint is None else "present"
    return (f"{table}\nmanifest signature ok; updated {manifest.updated_at}; "
            f"ledger checkpoint: {checkpoint}")


MAX_LISTED = 200


def format_verify(result: VerifyResult) -> str:
    checked = (f"{result.leaves} leaves checked against the ledger's signed checkpoints "
               f"({result.logs} logs)")
    if result.ok:
        lines = [f"archive {result.url} intact: {result.objects} objects, {result.rows} "
                 f"records, manifest signature ok, {checked}"]
    else:
        lines = [f"archive {result.url}: {len(result.problems)} problem(s); {checked}"]
        lines += [f"  PROBLEM {p}" for p in result.problems[:MAX_LISTED]]
        if len(result.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(result.problems) - MAX_LISTED} more")
    lines += [f"  warning {w}" for w in result.warnings]
    return "\n".join(lines)
