"""GDPR Art. 17: erasure requests in the period and whether each completed.

Reads the PII-free tombstones in ``subject_erasures`` written by ``genai-audit erase``
(crypto-shredding feature). A store without that table gets a plain "not available":
no erasure numbers are reported because none can be known.
"""

from __future__ import annotations

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.model import Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope, has_table, missing_columns
from genai_audit.clickhouse.store import Store

ERASURES = "subject_erasures"
# Columns as the erasure issue documents the tombstone (request id, time, records, operator).
ERASURE_COLUMNS = {"request_id": "request", "erased_at": "when", "tenant_id": "tenant",
                   "records_affected": "records made unreadable", "operator": "who ran it"}

ERASURES_SQL = """
SELECT erased_at, tenant_id, request_id, records_affected, operator
FROM subject_erasures
WHERE {tenant} erased_at >= {start:DateTime64(6, 'UTC')}
  AND erased_at < {end:DateTime64(6, 'UTC')}
ORDER BY erased_at DESC
"""


def build(store: Store, scope: Scope) -> Section:
    table = erasures_table(store, scope)
    if table is None:
        return Section(
            key="gdpr", title="GDPR: erasure requests (Art. 17)", status=Status.NOT_AVAILABLE,
            summary="Not available: this store has no erasure log (subject_erasures). "
                    "No erasure figures are reported because none can be known.",
            notes=["Installed with crypto-shredding erasure (`genai-audit erase`)."])
    if not table.columns:
        return Section(key="gdpr", title="GDPR: erasure requests (Art. 17)",
                       status=Status.NOT_AVAILABLE, summary=table.note, tables=[table])
    n = len(table.rows)
    records = sum(int(r[3] or 0) for r in table.rows)
    return Section(
        key="gdpr", title="GDPR: erasure requests (Art. 17)", status=Status.OK,
        summary=(f"{numbers.things(n, 'erasure request')} completed in this period, making "
                 f"{numbers.count(records)} records' personal content unreadable; their "
                 "metadata stays for the audit trail." if n else
                 "No erasure requests were completed in this period."),
        figures=[Figure.of_count("Erasures completed", n),
                 Figure.of_count("Records made unreadable", records)],
        tables=[table])


def erasures_table(store: Store, scope: Scope) -> Table | None:
    """Tombstones in scope; None without the table; no columns when its schema differs."""
    if not has_table(store, ERASURES):
        return None
    missing = missing_columns(store, ERASURES, ERASURE_COLUMNS)
    if missing:
        return Table("erasures", "Erasures", [], [],
                     note=f"subject_erasures lacks column(s) {', '.join(missing)}; this "
                          "section needs wiring to its schema.")
    tenant = "tenant_id = {tenant:String} AND" if scope.tenant is not None else ""
    rows = store.rows(ERASURES_SQL.replace("{tenant}", tenant), scope.params)
    return Table("erasures", "Erasures completed",
                 ["erased_at", "tenant_id", "request_id", "records_affected", "operator"], rows)
