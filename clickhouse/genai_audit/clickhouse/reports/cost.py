"""Cost attribution: by tenant, tool, feature and model, top users, month over month, and
the calls the guard's rate limits and budgets refused or alarmed on, by tenant and tool.

Costs come from the versioned pricing table at write time (``total_cost``,
``pricing_version``). Calls to models without a price cost 0 and carry the
``unknown_model`` flag; their tokens are reported here so a zero is never mistaken for free.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.facts import TOP_USERS, CubeRow, Facts
from genai_audit.clickhouse.reports.model import Chart, Figure, Section, Status, Table

_DIMENSIONS = (  # table key, title, column
    ("cost_by_tenant", "Cost by tenant", "tenant_id"),
    ("cost_by_tool", "Cost by tool", "tool_name"),
    ("cost_by_feature", "Cost by feature", "feature_name"),
    ("cost_by_model", "Cost by model", "model"),
)


def build(facts: Facts) -> Section:
    total = facts.total("cost")
    tables = [_by_dimension(facts, key, title, column, total)
              for key, title, column in _DIMENSIONS]
    top_tool = tables[1].rows[0] if tables[1].rows else None
    unpriced, unpriced_tokens = facts.total("unpriced"), facts.total("unpriced_tokens")
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
        figures=[Figure.of_money("Total cost", total),
                 Figure.of_count("Calls without a price", unpriced),
                 Figure.of_count("Tokens not costed", unpriced_tokens)],
        tables=tables)
    for table in (tables[0], tables[1], tables[3]):
        if table.rows:
            section.charts.append(Chart(table.key, table.title + " (USD)", "bar",
                                        [str(r[0]) or "(none)" for r in table.rows[:12]],
                                        {"cost": [float(r[1]) for r in table.rows[:12]]},
                                        unit="$"))
    section.tables.append(Table(
        "cost_top_users", f"Top {TOP_USERS} users by cost (pseudonymous keys)",
        ["user_key", "tenant_id", "cost", "interactions", "tokens"], facts.top_users))
    section.tables.append(_monthly(facts))
    section.tables.append(limits_table(facts, ("budget_alarm", "budget_exceeded", "rate_limited"),
                                       "limits_hit", "Rate limits and budgets hit"))
    refused = sum(int(r[3]) for r in facts.limits
                  if r[2] in ("rate_limited", "budget_exceeded"))
    section.figures.append(Figure("Calls refused by rate limits or budgets",
                                  numbers.count(refused)))
    if refused:
        section.summary += (f" {numbers.things(refused, 'call')} refused by rate limits or "
                            "budgets (see the limits table).")
    return section


def limits_table(facts: Facts, kinds: tuple[str, ...], key: str, title: str) -> Table:
    """The guard's limit events of ``kinds`` by tenant and tool (facts.LIMITS_SQL)."""
    return Table(key, title, ["tenant_id", "tool_name", "kind", "calls", "users",
                              "first_seen", "last_seen"],
                 [r for r in facts.limits if r[2] in kinds],
                 note="rate_limited / budget_exceeded: refused before reaching the provider "
                      "(status 429); budget_alarm: the first call after the month's spend "
                      "crossed a threshold; users are distinct pseudonymous keys.")


def _by_dimension(facts: Facts, key: str, title: str, column: str, total: Decimal) -> Table:
    def dimension(row: CubeRow) -> tuple[str]:
        return (str(getattr(row, column)),)

    sums = facts.rollup(dimension)
    rows = sorted(((name, s["cost"], numbers.share(s["cost"], total), s["interactions"],
                    s["prompt_tokens"] + s["response_tokens"]) for (name,), s in sums.items()),
                  key=lambda r: (-r[1], r[0]))
    return Table(key, title, [column, "cost", "share", "interactions", "tokens"], rows)


def _monthly(facts: Facts) -> Table:
    rows = []
    for month, (cost, n) in sorted(facts.months.items()):
        previous_month = _previous_month(month)
        previous = facts.months.get(previous_month, (Decimal(0), 0))[0] + \
            facts.before.get(previous_month, Decimal(0))
        rows.append((month.strftime("%Y-%m"), cost, n, numbers.change(cost, previous)))
    return Table("cost_month_over_month", "Cost month over month",
                 ["month", "cost", "interactions", "change"], rows,
                 note="Change is against the previous calendar month; the first and last "
                      "months may be partial when the period does not start or end on a "
                      "month boundary.")


def _previous_month(month: date) -> date:
    return month.replace(year=month.year - 1, month=12) if month.month == 1 else \
        month.replace(month=month.month - 1)
