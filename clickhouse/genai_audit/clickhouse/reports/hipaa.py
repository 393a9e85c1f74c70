"""HIPAA: where PHI went (routes) and who read it (disclosure accounting, 45 CFR 164.528).

PHI routes come from ``interactions`` (``data_class``, ``region``,
``hipaa_compliant_route``): PHI on a route not marked HIPAA-compliant is a finding.
Disclosures come from ``access_log``, written by ``genai-audit show`` (erasure/encryption
feature); a store without that table gets a plain statement, never a made-up zero.
"""

from __future__ import annotations

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.facts import PHI_CLASSES, Facts
from genai_audit.clickhouse.reports.model import Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope, has_table, missing_columns
from genai_audit.clickhouse.store import Store

# The disclosure log as the encryption/erasure issue documents it (DESIGN.md: access_log).
ACCESS_LOG = "access_log"
ACCESS_LOG_COLUMNS = {"accessed_at": "when", "tenant_id": "whose records", "actor": "who",
                      "purpose": "why", "record_ids": "which records"}

DISCLOSURES_SQL = """
SELECT actor, purpose, count() AS disclosures, sum(length(record_ids)) AS records,
       min(accessed_at), max(accessed_at)
FROM access_log
WHERE {tenant} accessed_at >= {start:DateTime64(6, 'UTC')}
  AND accessed_at < {end:DateTime64(6, 'UTC')}
GROUP BY actor, purpose ORDER BY disclosures DESC, actor, purpose
"""


def build(store: Store, scope: Scope, facts: Facts) -> Section:
    by_route = facts.rollup(lambda r: (r.tenant_id, r.region, r.hipaa_route, r.provider),
                            [r for r in facts.cube if r.phi])
    routes = sorted(((*key, s["interactions"]) for key, s in by_route.items()),
                    key=lambda r: (r[2], -r[4], r[0], r[1]))
    phi_total = sum(int(r[4]) for r in routes)
    off_route = sum(int(r[4]) for r in routes if not r[2])
    section = Section(
        key="hipaa", title="HIPAA: PHI routes and disclosures", status=Status.OK, summary="",
        figures=[Figure.of_count("Interactions carrying PHI", phi_total),
                 Figure.of_count("PHI on a non-HIPAA route", off_route)],
        tables=[Table("phi_routes", "PHI interactions by tenant, region and route",
                      ["tenant_id", "region", "hipaa_compliant_route", "provider",
                       "interactions"], routes)])
    summary = (f"{numbers.count(phi_total)} interactions carried PHI (data class "
               f"{' or '.join(PHI_CLASSES)})")
    summary += (f"; {numbers.count(off_route)} of them went over a route not marked "
                "HIPAA-compliant." if off_route else
                ", all over HIPAA-compliant routes." if phi_total else ".")
    if off_route:
        section.status = Status.ATTENTION
    disclosures = disclosures_table(store, scope)
    if disclosures is None:
        section.notes.append(
            "Disclosure accounting is not available in this store: it has no access_log "
            "table (installed with encryption at rest and `genai-audit show`). No "
            "disclosures are reported because none can be known, not because none happened.")
        summary += " Disclosure accounting: not available in this store."
    else:
        section.tables.append(disclosures)
        n = sum(int(r[2]) for r in disclosures.rows)
        section.figures.append(Figure.of_count("Disclosures (decrypting reads)", n))
        summary += f" {numbers.count(n)} disclosures of decrypted content were logged."
    section.summary = summary
    return section


def disclosures_table(store: Store, scope: Scope) -> Table | None:
    """Disclosures in scope from ``access_log``; None when the store has no such log."""
    if not has_table(store, ACCESS_LOG):
        return None
    missing = missing_columns(store, ACCESS_LOG, ACCESS_LOG_COLUMNS)
    if missing:
        return Table("disclosures", "Disclosures by actor and purpose", [], [],
                     note=f"access_log lacks column(s) {', '.join(missing)}; "
                          "this section needs wiring to its schema.")
    tenant = "tenant_id = {tenant:String} AND" if scope.tenant is not None else ""
    rows = store.rows(DISCLOSURES_SQL.replace("{tenant}", tenant), scope.params)
    return Table("disclosures", "Disclosures by actor and purpose",
                 ["actor", "purpose", "disclosures", "records", "first", "last"], rows)
