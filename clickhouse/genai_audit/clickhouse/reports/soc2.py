"""SOC2 activity: who used which tool and model, when, with what tokens and cost.

The seed's ``generate_soc2_report``, done right: grouped by day x tenant x tool x user
pseudonym x model, every parameter bound, capped at ``max_rows`` groups (the total number of
groups is reported, so a capped table says so) while the totals always cover every row.
"""

from __future__ import annotations

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.model import Chart, Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store

TOTALS_SQL = """
SELECT count(), sum(prompt_tokens), sum(response_tokens), sum(total_cost),
       uniqExact(tenant_id), uniqExact(gdpr_pseudonymized_user_key), uniqExact(tool_name),
       uniqExact(model), countIf(status_code >= 400 OR error_type != ''),
       min(event_timestamp), max(event_timestamp)
FROM interactions WHERE {where}
"""

DAILY_SQL = """
SELECT toDate(event_timestamp) AS day, count(), sum(total_cost)
FROM interactions WHERE {where}
GROUP BY day ORDER BY day
"""

ACTIVITY_SQL = """
SELECT toDate(event_timestamp) AS day, tenant_id, tool_name,
       gdpr_pseudonymized_user_key AS user_key, model,
       sum(prompt_tokens + response_tokens) AS total_tokens,
       sum(total_cost) AS cost, count() AS interactions, count() OVER () AS groups
FROM interactions WHERE {where}
GROUP BY day, tenant_id, tool_name, user_key, model
ORDER BY day DESC, tenant_id, tool_name, user_key, model
LIMIT {limit:UInt64}
"""

ACTIVITY_COLUMNS = ["day", "tenant_id", "tool_name", "user_key", "model", "total_tokens",
                    "cost", "interactions"]


def build(store: Store, scope: Scope, *, max_rows: int) -> Section:
    (n, prompt_tokens, response_tokens, cost, tenants, users, tools, models, failed,
     first, last) = store.rows(scope.sql(TOTALS_SQL), scope.params)[0]
    section = Section(
        key="soc2_activity", title="SOC2 activity", status=Status.OK,
        summary=(f"{numbers.count(n)} LLM interactions by {numbers.count(users)} users "
                 f"(pseudonymous keys) through {numbers.count(tools)} tools and "
                 f"{numbers.count(models)} models, costing {numbers.money(cost)}. Every "
                 "interaction is one append-only audit record." if n else
                 "No LLM interactions were recorded in this period."),
        figures=[
            Figure("Interactions", numbers.count(n)),
            Figure("Tokens (prompt + response)", numbers.count(prompt_tokens + response_tokens)),
            Figure("Cost", numbers.money(cost)),
            Figure("Tenants", numbers.count(tenants)),
            Figure("Users (pseudonymous)", numbers.count(users)),
            Figure("Failed LLM calls", numbers.count(failed)),
        ])
    if n:
        section.figures.append(Figure("First / last record",
                                      f"{first:%Y-%m-%d %H:%M} / {last:%Y-%m-%d %H:%M} UTC"))
    daily = store.rows(scope.sql(DAILY_SQL), scope.params)
    if daily:
        labels = [d.isoformat() for d, _, _ in daily]
        section.charts.append(Chart("daily_interactions", "Interactions per day", "line",
                                    labels, {"interactions": [float(c) for _, c, _ in daily]}))
        section.charts.append(Chart("daily_cost", "Cost per day (USD)", "line", labels,
                                    {"cost": [float(c) for _, _, c in daily]}, unit="$"))
    section.tables.append(activity_table(store, scope, max_rows=max_rows))
    section.tables.append(Table(
        "soc2_totals", "Totals", ["interactions", "prompt_tokens", "response_tokens",
                                  "total_tokens", "cost", "failed_calls"],
        [(n, prompt_tokens, response_tokens, prompt_tokens + response_tokens, cost, failed)]))
    return section


def activity_table(store: Store, scope: Scope, *, max_rows: int) -> Table:
    limit = max_rows if max_rows > 0 else 2**63 - 1
    rows = store.rows(scope.sql(ACTIVITY_SQL), scope.with_params(limit=limit))
    total = int(rows[0][-1]) if rows else 0
    table = Table("soc2_activity", "Activity by day, tenant, tool, user and model",
                  ACTIVITY_COLUMNS, [tuple(r[:-1]) for r in rows], total_rows=total)
    if table.truncated:
        table.note = (f"Showing the {len(rows):,} most recent of {total:,} groups; totals above "
                      "cover all of them. Use --max-rows 0 for every group.")
    return table
