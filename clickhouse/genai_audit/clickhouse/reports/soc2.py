"""SOC2 activity: who used which tool and model, when, with what tokens and cost.

The seed's ``generate_soc2_report``, done right: grouped by day x tenant x tool x user
pseudonym x model, every parameter bound. The listing is capped at ``max_rows`` groups,
newest first, and only the newest days that the cap needs are grouped (a year of records is
not re-aggregated to list its last week). Totals always cover every record.
"""

from __future__ import annotations

from datetime import UTC, datetime

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.facts import Facts
from genai_audit.clickhouse.reports.model import Chart, Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.reports.timeline import daily_timeline, format_gap
from genai_audit.clickhouse.store import Store

ACTIVITY_SQL = """
SELECT toDate(event_timestamp) AS day, tenant_id, tool_name,
       gdpr_pseudonymized_user_key AS user_key, model,
       sum(prompt_tokens + response_tokens) AS total_tokens,
       sum(total_cost) AS cost, count() AS interactions
FROM interactions WHERE {where} AND event_timestamp >= {since:DateTime64(6, 'UTC')}
GROUP BY day, tenant_id, tool_name, user_key, model
ORDER BY day DESC, tenant_id, tool_name, user_key, model
LIMIT {limit:UInt64}
"""

TITLE = "Activity by day, tenant, tool, user and model"
ACTIVITY_COLUMNS = ["day", "tenant_id", "tool_name", "user_key", "model", "total_tokens",
                    "cost", "interactions"]


def build(store: Store, scope: Scope, facts: Facts, *, max_rows: int) -> Section:
    n, cost = facts.total("interactions"), facts.total("cost")
    prompt_tokens, response_tokens = facts.total("prompt_tokens"), facts.total("response_tokens")
    tools, models = facts.distinct("tool_name"), facts.distinct("model")
    section = Section(
        key="soc2_activity", title="SOC2 activity", status=Status.OK,
        summary=(f"{numbers.things(n, 'LLM interaction')} by "
                 f"{numbers.things(facts.users, 'user')} (pseudonymous keys) through "
                 f"{numbers.things(tools, 'tool')} and {numbers.things(models, 'model')}, "
                 f"costing {numbers.money(cost)}. Every interaction is one append-only "
                 "audit record." if n else "No LLM interactions were recorded in this period."),
        figures=[
            Figure.of_count("Interactions", n),
            Figure.of_count("Tokens (prompt + response)", prompt_tokens + response_tokens),
            Figure.of_money("Cost", cost),
            Figure.of_count("Tenants", facts.distinct("tenant_id")),
            Figure.of_count("Users (pseudonymous)", facts.users),
            Figure.of_count("Failed LLM calls", facts.total("failed_calls")),
        ])
    if facts.first and facts.last:
        span = f"{facts.first:%Y-%m-%d %H:%M} / {facts.last:%Y-%m-%d %H:%M} UTC"
        section.figures.append(Figure("First / last record", span))
    if facts.days:  # every day of the period on the axis: an outage shows as a hole
        line = daily_timeline(facts.days, scope.period.start, scope.period.end)
        labels, gaps = [d.isoformat() for d in line.days], line.gap_indexes()
        section.charts.append(Chart("daily_interactions", "Interactions per day", "line",
                                    labels, {"interactions": line.interactions}, gaps=gaps))
        section.charts.append(Chart("daily_cost", "Cost per day (USD)", "line", labels,
                                    {"cost": line.cost}, unit="$", gaps=gaps))
        section.notes += [format_gap(g) for g in line.gaps]
    section.tables.append(activity_table(store, scope, facts, max_rows=max_rows))
    section.tables.append(Table(
        "soc2_totals", "Totals", ["interactions", "prompt_tokens", "response_tokens",
                                  "total_tokens", "cost", "failed_calls"],
        [(n, prompt_tokens, response_tokens, prompt_tokens + response_tokens, cost,
          facts.total("failed_calls"))]))
    return section


def activity_table(store: Store, scope: Scope, facts: Facts, *, max_rows: int) -> Table:
    """The newest ``max_rows`` groups (all when 0), grouping only the days they come from.

    A group has at least one record, so the newest days holding ``max_rows`` records hold at
    most ``max_rows`` groups; when they hold fewer, the window widens until it holds enough
    or covers the period. Whole days, newest first, so the cut is exact.
    """
    start = scope.period.start
    if max_rows <= 0:
        rows = store.rows(scope.sql(ACTIVITY_SQL),
                          scope.with_params(since=start, limit=2**63 - 1))
        return Table("soc2_activity", TITLE, ACTIVITY_COLUMNS, rows, total_rows=len(rows))
    budget = max_rows
    while True:
        since = _window_start(facts, start, budget)
        rows = store.rows(scope.sql(ACTIVITY_SQL),
                          scope.with_params(since=since, limit=max_rows + 1))
        if len(rows) > max_rows or since == start:
            break
        budget *= 4
    if len(rows) <= max_rows:
        return Table("soc2_activity", TITLE, ACTIVITY_COLUMNS, rows, total_rows=len(rows))
    rows = rows[:max_rows]
    return Table("soc2_activity", TITLE, ACTIVITY_COLUMNS, rows, complete=False,
                 note=f"Showing the {max_rows:,} most recent groups ({rows[-1][0]} to "
                      f"{rows[0][0]}); the totals above cover every record. Use --max-rows 0 "
                      "to list every group.")


def _window_start(facts: Facts, start: datetime, records: int) -> datetime:
    """Midnight of the newest day such that the days from it on hold ``records`` records."""
    held = 0
    for day in reversed(facts.days):
        held += day.interactions
        if held >= records:
            return max(start, datetime(day.day.year, day.day.month, day.day.day, tzinfo=UTC))
    return start
