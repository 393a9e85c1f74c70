"""Retention: how long records are kept, what expires soon, holds and archives.

Record-level facts come from ``interactions`` itself (each row carries its
``retention_days``, which the table's TTL enforces), so they are real on every store.
Legal holds and archive runs belong to the retention feature: it passes a
``RetentionFacts`` provider to ``build_report``; without one the report says they are not
available. Retention is about the store as it is now, so this section ignores the period
(it still honours the tenant).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.model import Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store

SOC2_MINIMUM_DAYS = 365
EXPIRY_WINDOW_DAYS = 30


@dataclass
class RetentionFacts:
    """What the retention feature knows beyond the rows: holds and archives."""

    active_holds: int
    held_records: int
    last_archive: str  # e.g. "2026-11-01T02:00Z s3://bucket/prefix, 120000 records"
    archive_verified: str  # e.g. "manifest signature and 24 object hashes OK"
    failed: tuple[str, ...] = ()  # the last archive run or verification that FAILED, if any


RetentionProvider = Callable[[Store, Scope], RetentionFacts]

CLASSES_SQL = """
SELECT retention_days, count() AS records, min(event_timestamp) AS oldest,
       countIf(toDateTime(event_timestamp) + toIntervalDay(retention_days)
               < {now:DateTime64(6, 'UTC')} + toIntervalDay({window:UInt16})) AS expiring
FROM interactions {tenant_where}
GROUP BY retention_days ORDER BY retention_days
"""


def build(store: Store, scope: Scope, now: datetime,
          provider: RetentionProvider | None) -> Section:
    tenant_where = "WHERE tenant_id = {tenant:String}" if scope.tenant is not None else ""
    params = {"now": now, "window": EXPIRY_WINDOW_DAYS}
    if scope.tenant is not None:
        params["tenant"] = scope.tenant
    classes = store.rows(CLASSES_SQL.replace("{tenant_where}", tenant_where), params)
    total = sum(int(r[1]) for r in classes)
    expiring = sum(int(r[3]) for r in classes)
    short = sum(int(r[1]) for r in classes if int(r[0]) < SOC2_MINIMUM_DAYS)
    oldest = min((r[2] for r in classes), default=None)
    summary = (f"{numbers.count(total)} records are held now; the oldest is from "
               f"{oldest:%Y-%m-%d}. {numbers.count(expiring)} will expire within "
               f"{EXPIRY_WINDOW_DAYS} days under their retention policy." if total else
               "The store holds no records for this scope.")
    if short:
        summary += (f" {numbers.count(short)} records have a retention shorter than SOC2's "
                    f"{SOC2_MINIMUM_DAYS} days (a deliberate per-tenant policy, or a "
                    "misconfiguration to check).")
    section = Section(
        key="retention", title="Retention", status=Status.ATTENTION if short else Status.OK,
        summary=summary,
        figures=[Figure.of_count("Records held now", total),
                 Figure("Oldest record", f"{oldest:%Y-%m-%d}" if oldest else "none"),
                 Figure.of_count(f"Expiring within {EXPIRY_WINDOW_DAYS} days", expiring),
                 Figure.of_count(f"Kept < {SOC2_MINIMUM_DAYS} days", short)],
        tables=[Table("retention_classes", "Records by retention period",
                      ["retention_days", "records", "oldest", "expiring_within_30_days"],
                      classes)])
    if provider is None:
        section.notes.append("Legal holds and archive runs: not available in this store "
                             "(installed with the retention feature: `genai-audit hold`, "
                             "`genai-audit archive`).")
        return section
    facts = provider(store, scope)
    section.figures += [Figure.of_count("Active legal holds", facts.active_holds),
                        Figure.of_count("Records under hold", facts.held_records),
                        Figure("Last archive run", facts.last_archive),
                        Figure("Archive verification", facts.archive_verified)]
    if facts.failed:  # a failed archive or archive verification is never "OK"
        section.status = Status.ATTENTION
        section.notes += [f"The last {what} FAILED: see `genai-audit verify --archive`."
                          for what in facts.failed]
    return section
