"""Control failures: records the pipeline could not handle as designed, never dropped.

Each kind maps to a flag the pipeline writes (``processor/record.py::Flag``). Unattributed
spans (no tenant) land under tenant ``_unattributed``: they belong to no tenant, so they are
counted store-wide for the period even in a single-tenant report, and labelled so.
"""

from __future__ import annotations

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.cost import limits_table
from genai_audit.clickhouse.reports.facts import CONTROL_FLAGS, QUALITY_FLAGS, Facts
from genai_audit.clickhouse.reports.model import Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import UNATTRIBUTED_TENANT, Scope
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
    unattributed = store.rows(scope.sql(UNATTRIBUTED_SQL),
                              scope.with_params(unattributed=UNATTRIBUTED_TENANT))[0]
    table_rows = []
    if unattributed[0]:
        table_rows.append(("unattributed", "span without a tenant (store-wide count)", True,
                           *unattributed))
    for flag, n, first, last, examples in rows:
        table_rows.append((flag, MEANINGS[str(flag)], flag in CONTROL_FLAGS, n, first, last,
                           examples))
    # Distinct records: one record can carry several flags (redaction_failed + withheld).
    # Unattributed records are counted once, whatever else they carry.
    controls = int(unattributed[0]) + sum(r.control_failures for r in facts.cube
                                          if r.tenant_id != UNATTRIBUTED_TENANT)
    quality = facts.total("quality_notes")
    if controls:
        summary = (f"{numbers.things(controls, 'record')} with control failures in this period; "
                   "each row below names the kind and example record ids to investigate.")
    else:
        summary = "No control failures in this period: every record was attributed, priced "\
                  "and redacted as configured."
    if quality:
        summary += (f" {numbers.count(quality)} data-quality notes (malformed or incomplete "
                    "span data; metadata stored, flagged).")
    return Section(
        key="control_failures", title="Control failures",
        status=Status.ATTENTION if controls else Status.OK, summary=summary,
        figures=[Figure("Unattributed spans (store-wide)", numbers.count(unattributed[0])),
                 Figure("Records with control failures", numbers.count(controls)),
                 Figure("Records with data-quality notes", numbers.count(quality))],
        tables=[Table("control_failures", "Control failures and data-quality notes",
                      ["kind", "meaning", "control_failure", "records", "first_seen",
                       "last_seen", "example_ids"], table_rows),
                limits_table(facts, ("rate_limited", "budget_exceeded", "limiter_unavailable"),
                             "limits_refused", "Calls refused or unlimited by the guard's "
                             "limits, by tenant and tool")])
