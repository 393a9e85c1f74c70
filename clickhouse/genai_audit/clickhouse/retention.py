"""Retention at run time: enforce what the TTLs promise, and summarise it for the report.

The TTLs of ``interactions`` do the expiring. With ``ttl_only_drop_parts`` ClickHouse drops a
part only once *every* row in it has expired, which costs no rewrite but can keep a record up
to a month (one partition) past its date. ``enforce_retention`` closes that gap: it finds the
partitions that hold rows (or content) past due and has ClickHouse apply the TTLs there now
(``OPTIMIZE ... PARTITION ... FINAL``), so expiry is as precise as the maintenance schedule.
Held records are copies in ``held_interactions`` and are not touched.

``retention_summary`` is what the report's retention section shows.

SQL text here is assembled only from module constants, column names read from the
server's catalogue (quoted) and table-function calls whose arguments are bound parameters;
every value is a bound parameter (hence the ``noqa: S608`` markers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.binding import format_str

from genai_audit.clickhouse.holds import HELD, Hold, list_holds
from genai_audit.clickhouse.policies import current_policies, resolve
from genai_audit.clickhouse.reports.retention import RetentionFacts
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store
from genai_audit.processor.retention import RetentionPolicy

SOURCE = "interactions"
RUNS = "archive_runs"
_ROW_EXPIRY = "toDateTime(event_timestamp) + toIntervalDay(retention_days)"
_CONTENT_EXPIRY = "toDateTime(event_timestamp) + toIntervalDay(content_retention_days)"
# '' too: ClickHouse documents the data type's default as what a column TTL writes back
# (26.x writes the column's DEFAULT, 'expired'); both mean the content is gone.
_HAS_CONTENT = "content_state NOT IN ('expired', '', 'not_captured', 'withheld')"


@dataclass
class EnforcementResult:
    partitions: list[str] = field(default_factory=list)
    rows_expired: int = 0
    contents_expired: int = 0


def overdue(store: Store, now: datetime | None = None) -> list[tuple[str, int, int]]:
    """``(partition id, rows past due, contents past due)`` for each partition with any."""
    return [(str(p), int(r), int(c)) for p, r, c in store.rows(
        f"SELECT _partition_id, countIf({_ROW_EXPIRY} <= toDateTime({{now:UInt32}})), "  # noqa: S608
        f"countIf({_CONTENT_EXPIRY} <= toDateTime({{now:UInt32}}) AND {_HAS_CONTENT}) "
        f"FROM {SOURCE} GROUP BY _partition_id HAVING count() > 0 AND "
        f"(countIf({_ROW_EXPIRY} <= toDateTime({{now:UInt32}})) > 0 OR "
        f"countIf({_CONTENT_EXPIRY} <= toDateTime({{now:UInt32}}) AND {_HAS_CONTENT}) > 0) "
        "ORDER BY _partition_id", {"now": _now(store, now)})]


def enforce_retention(store: Store, now: datetime | None = None) -> EnforcementResult:
    """Apply the TTLs now in every partition that holds expired rows or content."""
    result = EnforcementResult()
    for partition_id, rows, contents in overdue(store, now):
        # the partition id comes from the server (_partition_id), quoted as a literal
        store.command(f"OPTIMIZE TABLE {SOURCE} PARTITION ID {format_str(partition_id)} FINAL")
        result.partitions.append(partition_id)
        result.rows_expired += rows
        result.contents_expired += contents
    return result


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    kind: str
    destination: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    objects_written: int
    rows: int
    problems: list[str]


@dataclass
class RetentionSummary:
    tenant_id: str | None
    records: int
    oldest_record: datetime | None
    due_in_30_days: int  # rows whose retention ends within 30 days (or already has)
    content_due_in_30_days: int  # rows whose content is blanked within 30 days
    overdue: int  # rows past retention still present (maintain has not run since)
    kept_longer_than_policy: int  # rows stamped under a longer policy than today's
    policies: dict[str, RetentionPolicy]
    active_holds: list[Hold]
    held_records: int
    last_archive: RunInfo | None
    last_verification: RunInfo | None

    @property
    def failed_runs(self) -> tuple[str, ...]:
        """"archive run" / "archive verification" when the last one of each FAILED."""
        return tuple(name for name, run in (("archive run", self.last_archive),
                                            ("archive verification", self.last_verification))
                     if run is not None and not run.ok)


def retention_summary(store: Store, tenant: str | None = None, *,
                      default_policy: RetentionPolicy | None = None,
                      now: datetime | None = None) -> RetentionSummary:
    """Oldest record, what expires soon, holds, and the last archive run and verification."""
    params: dict[str, Any] = {"all": tenant is None, "tenant": tenant or "",
                              "now": _now(store, now)}
    scope = "({all:Bool} OR tenant_id = {tenant:String})"
    records, oldest, due, content_due, late = store.rows(
        f"SELECT count(), min(event_timestamp), "  # noqa: S608
        f"countIf({_ROW_EXPIRY} <= toDateTime({{now:UInt32}}) + INTERVAL 30 DAY), "
        f"countIf({_CONTENT_EXPIRY} <= toDateTime({{now:UInt32}}) + INTERVAL 30 DAY "
        f"AND {_HAS_CONTENT}), countIf({_ROW_EXPIRY} <= toDateTime({{now:UInt32}})) "
        f"FROM {SOURCE} WHERE {scope}", params)[0]
    policies = current_policies(store)
    fallback = default_policy or RetentionPolicy(365)
    longer = 0
    for tenant_id, days, count in store.rows(
            f"SELECT tenant_id, retention_days, count() FROM {SOURCE} WHERE {scope} "  # noqa: S608
            "GROUP BY tenant_id, retention_days", params):
        if int(days) > resolve(policies, str(tenant_id), fallback).days:
            longer += int(count)
    shown = policies if tenant is None else {tenant: resolve(policies, tenant, fallback)}
    held = int(store.scalar(f"SELECT uniqExact(id) FROM {HELD} WHERE {scope}", params) or 0)  # noqa: S608
    return RetentionSummary(
        tenant_id=tenant, records=int(records), oldest_record=oldest if int(records) else None,
        due_in_30_days=int(due), content_due_in_30_days=int(content_due), overdue=int(late),
        kept_longer_than_policy=longer, policies=shown,
        active_holds=list_holds(store, tenant), held_records=held,
        last_archive=last_run(store, "archive"), last_verification=last_run(store, "verify"))


def last_run(store: Store, kind: str) -> RunInfo | None:
    rows = store.rows(
        f"SELECT run_id, toString(kind), destination, started_at, finished_at, ok, "  # noqa: S608
        f"objects_written, rows, problems FROM {RUNS} WHERE kind = {{kind:String}} "
        "ORDER BY finished_at DESC LIMIT 1", {"kind": kind})
    if not rows:
        return None
    r = rows[0]
    return RunInfo(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], bool(r[5]), int(r[6]),
                   int(r[7]), [str(p) for p in r[8]])


def _now(store: Store, now: datetime | None) -> int:
    """Unix seconds: the given moment, or the server's clock."""
    if now is not None:
        return int(now.timestamp())
    return int(store.scalar("SELECT toUnixTimestamp(now())"))


def report_facts(store: Store, scope: Scope) -> RetentionFacts:
    """The report's retention provider (``build_report(retention=report_facts)``)."""
    summary = retention_summary(store, scope.tenant)
    return RetentionFacts(
        active_holds=len(summary.active_holds), held_records=summary.held_records,
        last_archive=_describe_run(summary.last_archive, "never archived"),
        archive_verified=_describe_run(summary.last_verification, "never verified"),
        failed=summary.failed_runs)


def _describe_run(run: RunInfo | None, never: str) -> str:
    if run is None:
        return never
    when = f"{run.finished_at:%Y-%m-%d %H:%M}Z {run.destination}"
    if run.kind == "archive":
        state = "ok" if run.ok else "FAILED"
        return f"{when}, {run.objects_written} objects, {run.rows} records written, {state}"
    if run.ok:
        return (f"{when}: manifest signature, object hashes and {run.rows} records OK, "
                "each matched against the ledger's signed leaves")
    return f"{when}: FAILED: " + "; ".join(run.problems[:3])
