"""``genai-audit maintain``: one pass of holds, retention and archive, for cron/CronJobs."""

from __future__ import annotations

import click

from genai_audit.cli.archive_cmd import format_verify
from genai_audit.cli.common import open_store, store_options
from genai_audit.clickhouse.maintain import MaintenanceReport, run_maintenance
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore


@click.command("maintain")
@click.option("--archive-to", "archive_url",
              help="Archive destination [env GENAI_AUDIT_ARCHIVE_URL; none: no archiving].")
@click.option("--no-verify", is_flag=True, help="Skip verifying the archive after writing.")
@click.option("--settle-seconds", type=click.IntRange(min=0), default=60, show_default=True,
              help="Leave records ingested in the last N seconds for the next run.")
@store_options
@click.pass_context
def command(ctx: click.Context, archive_url: str | None, no_verify: bool, settle_seconds: int,
            settings: Settings) -> None:
    """Run retention housekeeping once; exit 0 if all is well, 1 if a step failed or the
    archive did not verify. Safe to run as often as you like.

    \b
    1. legal holds: copy records that fall under an open hold;
    2. retention: apply the TTLs now where records or content are past due;
    3. archive: write whole months older than the hot window, then verify them.

    \b
    Examples (run daily, more often than the shortest retention):
      genai-audit maintain --archive-to s3://audit-archive/prod
      # crontab:  17 3 * * *  genai-audit maintain --dsn http://... >> /var/log/genai-audit.log
      # Kubernetes: a CronJob running the same command (docs/retention.md)
    """
    report = run_maintenance(open_store(settings), open_keystore(settings), settings,
                             archive_url=archive_url, verify=not no_verify,
                             settle_seconds=settle_seconds)
    click.echo(format_report(report))
    if not report.ok:
        ctx.exit(1)


def format_report(report: MaintenanceReport) -> str:
    lines = [f"maintenance at {report.started_at:%Y-%m-%d %H:%M:%S} UTC",
             f"  holds:     {report.held_rows_copied} newly covered records copied"]
    if report.retention is not None:
        r = report.retention
        lines.append(f"  retention: {r.rows_expired} records and {r.contents_expired} contents "
                     f"expired now in {len(r.partitions)} partition(s)")
    if report.archive is not None:
        a = report.archive
        lines.append(f"  archive:   {len(a.written)} objects written ({a.rows} records), "
                     f"{a.skipped} already archived")
    else:
        lines.append("  archive:   not run (no archive URL)" if not report.errors
                     else "  archive:   not run")
    if report.verification is not None:
        lines.append("  " + format_verify(report.verification).replace("\n", "\n  "))
    lines += [f"  ERROR {e}" for e in report.errors]
    return "\n".join(lines)
