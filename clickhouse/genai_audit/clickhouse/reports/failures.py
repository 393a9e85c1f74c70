"""Control failures: records the pipeline could not handle as designed, never dropped.

Each kind maps to a flag the pipeline writes (``processor/record.py::Flag``). Unattributed
spans (no tenant) land under tenant ``_unattributed``: they belong to no tenant, so the
all-tenant report counts them; a tenant's report shows that tenant only (another tenant's
unattributed spans must not turn an empty tenant's report to "Needs attention").

The store owner's background work is a control too: a maintenance pass with a failed step
(holds, retention, archive) or a ledger checkpoint that could not be stored is a row in
``control_events`` (``clickhouse/control_events.py``); the all-tenant report lists them.
"""

from __future__ import annotations

from typing import Any

from genai_audit.clickhouse import control_events
from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.cost import limits_table
from genai_audit.clickhouse.reports.facts import CONTROL_FLAGS, QUALITY_FLAGS, Facts
from genai_audit.clickhouse.reports.model import Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import UNATTRIBUTED_TENANT, Scope, has_table
from genai_audit.clickhouse.store import Store

# flag -> what it means for the auditor (facts.CONTROL_FLAGS are control failures, the rest
# data-quality notes)
MEANINGS: dict[str, str] = {
    "unknown_model": "model without a price: cost recorded as 0",
    "redaction_failed": "PII redaction failed: content withheld",
    "encryption_failed": "encryption failed: content withheld",
    "content_withheld": "content withheld by a fail-closed stage",
    "malformed_input_messages": "prompt messages were not valid JSON",
    "malformed_output_messages": "response messages were not valid JSON",
    "missing_usage": "token usage missing from the span",
    "missing_start_time": "span without a start time: its end or arrival time recorded",
    "invalid_utf8": "text was not valid UTF-8 (replaced)",
    "content_truncated": "content truncated by the instrumentation",
    "limiter_unavailable": "rate limiter's store unavailable: the call was not limited",
}

BY_FLAG_SQL = """
SELECT flag, count() AS records, min(event_timestamp), max(event_timestamp),
       arrayStringConcat(groupArray(3)(toString(id)), ' ') AS example_ids
FROM interactions ARRAY JOIN flags AS flag
WHERE {where} AND notEmpty(flags) AND flag IN {kinds:Array(String)}
GROUP BY flag ORDER BY records DESC, flag
"""

UNATTRIBUTED_SQL = """
SELECT count(), min(event_timestamp), max(event_timestamp),
       arrayStringConcat(groupArray(3)(toString(id)), ' ')
FROM interactions
WHERE tenant_id = {unattributed:String} AND {period_where}
"""


def build(store: Store, scope: Scope, facts: Facts) -> Section:
    rows = store.rows(scope.sql(BY_FLAG_SQL),
                      scope.with_params(kinds=CONTROL_FLAGS + QUALITY_FLAGS))
    unattributed: tuple[Any, ...] = (0, None, None, "")
    if scope.tenant is None:
        unattributed = store.rows(scope.sql(UNATTRIBUTED_SQL),
                                  scope.with_params(unattributed=UNATTRIBUTED_TENANT))[0]
    table_rows = []
    if unattributed[0]:
        table_rows.append(("unattributed", "span without a tenant", True, *unattributed))
    for flag, n, first, last, examples in rows:
        table_rows.append((flag, MEANINGS[str(flag)], flag in CONTROL_FLAGS, n, first, last,
                           examples))
    operations = (control_events.failures(store, scope.period.start, scope.period.end)
                  if scope.tenant is None and has_table(store, control_events.TABLE) else [])
    for kind, n, first, last, detail in operations:
        table_rows.append((kind, control_events.KINDS[kind], True, n, first, last, detail))
    failed_operations = sum(n for _, n, _, _, _ in operations)
    # Distinct records: one record can carry several flags (redaction_failed + withheld).
    # Unattributed records are counted once, whatever else they carry.
    controls = int(unattributed[0] or 0) + sum(r.control_failures for r in facts.cube
                                          if r.tenant_id != UNATTRIBUTED_TENANT)
    quality = facts.total("quality_notes")
    parts = []
    if controls:
        parts.append(f"{numbers.things(controls, 'record')} with control failures in this "
                     "period; each row below names the kind and example record ids to "
                     "investigate.")
    if failed_operations:
        parts.append(f"{numbers.things(failed_operations, 'background operation')} of the "
                     "store's owner failed (maintenance or ledger checkpoints; the row shows "
                     "the last error).")
    summary = " ".join(parts) or ("No control failures in this period: every record was "
                                  "attributed, priced and redacted as configured.")
    if quality:
        summary += (f" {numbers.count(quality)} data-quality notes (malformed or incomplete "
                    "span data; metadata stored, flagged).")
    return Section(
        key="control_failures", title="Control failures",
        status=Status.ATTENTION if controls or failed_operations else Status.OK,
        summary=summary,
        figures=[*([Figure.of_count("Unattributed spans", unattributed[0]),
                    Figure.of_count("Failed background operations", failed_operations)]
                   if scope.tenant is None else []),
                 Figure.of_count("Records with control failures", controls),
                 Figure.of_count("Records with data-quality notes", quality)],
        tables=[Table("control_failures", "Control failures and data-quality notes",
                      ["kind", "meaning", "control_failure", "records", "first_seen",
                       "last_seen", "example_ids"], table_rows),
                limits_table(facts, ("rate_limited", "budget_exceeded", "limiter_unavailable"),
                             "limits_refused", "Calls refused or unlimited by the guard's "
                             "limits, by tenant and tool")])
