"""PII controls: was personal data detected, redacted before it reached the LLM, withheld?

Reads the flags the redaction stage writes on each record (``has_pii_detected``,
``pii_redacted_before_llm``, ``pii_entity_counts``) and the fail-closed markers
(``content_state = 'withheld'``, flags ``redaction_failed`` / ``content_withheld``). PII that
was detected but not redacted before the LLM call is the finding an auditor looks for.
Never shows content: the sample lists record ids, pseudonyms and entity types only.
"""

from __future__ import annotations

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.facts import Facts
from genai_audit.clickhouse.reports.model import Chart, Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store

ENTITIES_SQL = """
SELECT entity, sum(n) AS detections, count() AS interactions
FROM interactions
ARRAY JOIN mapKeys(pii_entity_counts) AS entity, mapValues(pii_entity_counts) AS n
WHERE {where} AND has_pii_detected
GROUP BY entity ORDER BY detections DESC, entity
"""

SAMPLE_SQL = """
SELECT event_timestamp, tenant_id, gdpr_pseudonymized_user_key AS user_key, tool_name,
       arrayStringConcat(arraySort(mapKeys(pii_entity_counts)), ', ') AS entities,
       pii_redacted_before_llm, content_state, toString(id) AS record_id
FROM interactions WHERE {where} AND has_pii_detected
ORDER BY event_timestamp DESC LIMIT {limit:UInt32}
"""

SAMPLE_SIZE = 25


def build(store: Store, scope: Scope, facts: Facts) -> Section:
    n, detected = facts.total("interactions"), facts.total("pii")
    redacted, withheld = facts.total("pii_redacted"), facts.total("withheld")
    unredacted, failed = detected - redacted, facts.total("redaction_failed")
    if not n:
        summary = "No interactions in this period, so no PII to report."
    elif not detected:
        summary = ("No PII was detected in any interaction of this period. (Detection is done "
                   "by the redaction stage; records written without it cannot report PII.)")
    else:
        summary = (f"PII was detected in {numbers.count(detected)} of {numbers.count(n)} "
                   f"interactions ({numbers.share(detected, n)}); "
                   f"{numbers.share(redacted, detected)} of those were redacted before the LLM "
                   "saw them.")
        if unredacted:
            summary += (f" {numbers.count(unredacted)} reached the LLM unredacted: review "
                        "them below.")
    if withheld:
        summary += (f" Content of {numbers.things(withheld, 'interaction')} was withheld "
                    "(fail-closed): metadata kept, text not stored.")
    section = Section(
        key="pii_controls", title="PII controls",
        status=Status.ATTENTION if unredacted or failed else Status.OK, summary=summary,
        figures=[
            Figure("Interactions with PII", f"{numbers.count(detected)} "
                                            f"({numbers.share(detected, n)})", int(detected or 0)),
            Figure.of_share("Redacted before the LLM", redacted, detected),
            Figure.of_count("PII sent unredacted", unredacted),
            Figure.of_count("Content withheld (fail-closed)", withheld),
            Figure.of_count("Redaction failures", failed),
        ])
    entities = store.rows(scope.sql(ENTITIES_SQL), scope.params) if detected else []
    section.tables.append(Table("pii_entities", "PII entity types detected",
                                ["entity", "detections", "interactions"], entities))
    if entities:
        section.charts.append(Chart("pii_entities", "PII detections by entity type", "bar",
                                    [str(e) for e, _, _ in entities],
                                    {"detections": [float(d) for _, d, _ in entities]}))
    by_tool = facts.rollup(lambda r: (r.tenant_id, r.tool_name))
    section.tables.append(Table(
        "pii_by_tool", "PII by tenant and tool",
        ["tenant_id", "tool_name", "interactions", "with_pii", "redacted_before_llm",
         "withheld"],
        sorted(((t, tool, s["interactions"], s["pii"], s["pii_redacted"], s["withheld"])
                for (t, tool), s in by_tool.items()), key=lambda r: (-r[3], r[0], r[1]))))
    sample = store.rows(scope.sql(SAMPLE_SQL), scope.with_params(limit=SAMPLE_SIZE)) \
        if detected else []
    section.tables.append(Table(
        "pii_sample", f"Most recent interactions with PII (up to {SAMPLE_SIZE}; no content shown)",
        ["event_timestamp", "tenant_id", "user_key", "tool_name", "entities",
         "redacted_before_llm", "content_state", "record_id"], sample, total_rows=detected))
    return section
