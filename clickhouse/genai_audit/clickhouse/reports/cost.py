"""Cost attribution: by tenant, tool, feature and model, top users, and month over month.

Costs come from the versioned pricing table at write time (``total_cost``,
``pricing_version``). Calls to models without a price cost 0 and carry the
``unknown_model`` flag; their tokens are reported here so a zero is never mistaken for free.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.model import Chart, Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store

TOP_USERS = 10

_DIMENSIONS = {  # table key -> (title, column); the column names are constants, not input
    "cost_by_tenant": ("Cost by tenant", "tenant_id"),
    "cost_by_tool": ("Cost by tool", "tool_name"),
    "cost_by_feature": ("Cost by feature", "feature_name"),
    "cost_by_model": ("Cost by model", "model"),
}

BY_DIMENSION_SQL = """
SELECT {dim} AS name, sum(total_cost) AS cost, count() AS interactions,
       sum(prompt_tokens + response_tokens) AS tokens
FROM interactions WHERE {where}
GROUP BY name ORDER BY cost DESC, name
"""

TOP_USERS_SQL = """
SELECT gdpr_pseudonymized_user_key AS user_key, tenant_id, sum(total_cost) AS cost,
       count() AS interactions, sum(prompt_tokens + response_tokens) AS tokens
FROM interactions WHERE {where}
GROUP BY user_key, tenant_id ORDER BY cost DESC, user_key LIMIT {limit:UInt32}
"""

# Months overlapping the period, plus the month before it so the first one has a change.
MONTHLY_SQL = """
SELECT toStartOfMonth(event_timestamp) AS month, sum(total_cost), count()
FROM interactions
WHERE {tenant} event_timestamp >= toStartOfMonth(addMonths({start:DateTime64(6, 'UTC')}, -1))
  AND event_timestamp < {end:DateTime64(6, 'UTC')}
GROUP BY month ORDER BY month
"""

UNPRICED_SQL = """
SELECT count(), sum(prompt_tokens + response_tokens)
FROM interactions WHERE {where} AND has(flags, 'unknown_model')
"""


def build(store: Store, scope: Scope) -> Section:
    tables = [_by_dimension(store, scope, key, title, column)
              for key, (title, column) in _DIMENSIONS.items()]
    total = sum((Decimal(r[1]) for r in tables[0].rows), Decimal(0))
    top_tool = tables[1].rows[0] if tables[1].rows else None
    unpriced, unpriced_tokens = store.rows(scope.sql(UNPRICED_SQL), scope.params)[0]
    summary = f"Total cost {numbers.money(total)}."
    if top_tool:
        summary += (f" The most expensive tool was {top_tool[0] or '(none)'} at "
                    f"{numbers.money(top_tool[1])} ({numbers.share(top_tool[1], total)}).")
    if unpriced:
        summary += (f" {numbers.things(unpriced, 'call')} used models without a price "
                    f"({numbers.count(unpriced_tokens)} tokens not costed).")
    section = Section(
        key="cost_attribution", title="Cost attribution",
        status=Status.ATTENTION if unpriced else Status.OK, summary=summary,
        figures=[Figure("Total cost", numbers.money(total)),
                 Figure("Calls without a price", numbers.count(unpriced)),
                 Figure("Tokens not costed", numbers.count(unpriced_tokens))],
        tables=tables)
    for table in tables[:2] + tables[3:]:
        if table.rows:
            section.charts.append(Chart(table.key, table.title + " (USD)", "bar",
                                        [str(r[0]) or "(none)" for r in table.rows[:12]],
                                        {"cost": [float(r[1]) for r in table.rows[:12]]},
                                        unit="$"))
    section.tables.append(Table(
        "cost_top_users", f"Top {TOP_USERS} users by cost (pseudonymous keys)",
        ["user_key", "tenant_id", "cost", "interactions", "tokens"],
        store.rows(scope.sql(TOP_USERS_SQL), scope.with_params(limit=TOP_USERS))))
    section.tables.append(_monthly(store, scope))
    return section


def _by_dimension(store: Store, scope: Scope, key: str, title: str, column: str) -> Table:
    rows = store.rows(scope.sql(BY_DIMENSION_SQL.replace("{dim}", column)), scope.params)
    total = sum((Decimal(r[1]) for r in rows), Decimal(0))
    return Table(key, title, [column, "cost", "share", "interactions", "tokens"],
                 [(name, cost, numbers.share(cost, total), n, tokens)
                  for name, cost, n, tokens in rows])


def _monthly(store: Store, scope: Scope) -> Table:
    tenant = "tenant_id = {tenant:String} AND" if scope.tenant is not None else ""
    rows = store.rows(MONTHLY_SQL.replace("{tenant}", tenant), scope.params)
    period_start = scope.period.start.date().replace(day=1)
    by_month = {(m if isinstance(m, date) else m.date()): (Decimal(c), n) for m, c, n in rows}
    out: list[tuple[Any, ...]] = []
    for month, (cost, n) in sorted(by_month.items()):
        if month < period_start:
            continue
        previous = by_month.get(_previous_month(month), (Decimal(0), 0))[0]
        out.append((month.strftime("%Y-%m"), cost, n, numbers.change(cost, previous)))
    return Table("cost_month_over_month", "Cost month over month",
                 ["month", "cost", "interactions", "change"], out,
                 note="Change is against the previous calendar month; the first and last "
                      "months may be partial when the period does not start or end on a "
                      "month boundary.")


def _previous_month(month: date) -> date:
    return month.replace(year=month.year - 1, month=12) if month.month == 1 else \
        month.replace(month=month.month - 1)
