"""The few scans every section reads from, so a report costs a handful of passes over the rows.

A year of records is millions of rows; running each section's questions as its own query
would scan them twenty times. Instead the report makes three passes and the sections
aggregate the (small) results in Python:

* the *cube*: every total the sections need, grouped by the low-cardinality dimensions
  (tenant, tool, feature, model, provider, region, PHI, HIPAA route) -- thousands of rows at
  most, however many records there are;
* the *daily* series: records and cost per day, from the start of
  the month before the period (for month-over-month) to its end;
* the *users*: the top users by cost, and how many distinct users there are;
* the *limits*: calls the guard's rate limits and budgets refused or flagged, by tenant, tool
  and kind (only the rows that carry one of those flags).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store

CONTROL_FLAGS = ["unknown_model", "redaction_failed", "encryption_failed", "content_withheld",
                 "limiter_unavailable"]
# the guard's rate limits and budgets (instrumentation/limits): refusals and alarms
LIMIT_FLAGS = ["rate_limited", "budget_exceeded", "budget_alarm", "limiter_unavailable"]
QUALITY_FLAGS = ["malformed_input_messages", "malformed_output_messages", "missing_usage",
                 "missing_start_time", "invalid_utf8", "content_truncated"]
PHI_CLASSES = ["phi", "hipaa"]  # data_class values (baggage genai_audit.data_class) meaning PHI
TOP_USERS = 10

CUBE_SQL = """
SELECT tenant_id, tool_name, feature_name, model, provider, region,
       lower(data_class) IN {phi:Array(String)} AS phi, hipaa_compliant_route,
       count(), sum(prompt_tokens), sum(response_tokens), sum(total_cost),
       countIf(status_code >= 400 OR error_type != ''),
       countIf(has_pii_detected), countIf(has_pii_detected AND pii_redacted_before_llm),
       countIf(content_state = 'withheld' OR has(flags, 'content_withheld')),
       countIf(has(flags, 'redaction_failed')),
       countIf(has(flags, 'unknown_model')),
       sumIf(prompt_tokens + response_tokens, has(flags, 'unknown_model')),
       countIf(prompt_hash = unhex(repeat('00', 32)) OR response_hash = unhex(repeat('00', 32))),
       countIf(hasAny(flags, {controls:Array(String)})),
       countIf(hasAny(flags, {quality:Array(String)})),
       min(event_timestamp), max(event_timestamp)
FROM interactions WHERE {where}
GROUP BY tenant_id, tool_name, feature_name, model, provider, region, phi,
         hipaa_compliant_route
"""

DAILY_SQL = """
SELECT toDate(event_timestamp) AS day, event_timestamp >= {start:DateTime64(6, 'UTC')} AS inside,
       count(), sum(total_cost)
FROM interactions
WHERE {tenant} event_timestamp >= toStartOfMonth(addMonths({start:DateTime64(6, 'UTC')}, -1))
  AND event_timestamp < {end:DateTime64(6, 'UTC')}
GROUP BY day, inside ORDER BY day
"""

USERS_SQL = """
SELECT user_key, tenant_id, cost, interactions, tokens, count() OVER () AS users
FROM (
    SELECT gdpr_pseudonymized_user_key AS user_key, tenant_id, sum(total_cost) AS cost,
           count() AS interactions, sum(prompt_tokens + response_tokens) AS tokens
    FROM interactions WHERE {where}
    GROUP BY user_key, tenant_id
)
ORDER BY cost DESC, user_key LIMIT {limit:UInt32}
"""


LIMITS_SQL = """
SELECT tenant_id, tool_name, flag, count(), uniqExact(gdpr_pseudonymized_user_key),
       min(event_timestamp), max(event_timestamp)
FROM interactions ARRAY JOIN flags AS flag
WHERE {where} AND hasAny(flags, {kinds:Array(String)}) AND flag IN {kinds:Array(String)}
GROUP BY tenant_id, tool_name, flag ORDER BY tenant_id, tool_name, flag
"""


@dataclass(frozen=True)
class CubeRow:
    tenant_id: str
    tool_name: str
    feature_name: str
    model: str
    provider: str
    region: str
    phi: bool
    hipaa_route: bool
    interactions: int
    prompt_tokens: int
    response_tokens: int
    cost: Decimal
    failed_calls: int
    pii: int
    pii_redacted: int
    withheld: int
    redaction_failed: int
    unpriced: int
    unpriced_tokens: int
    uncommitted: int
    control_failures: int
    quality_notes: int
    first: datetime
    last: datetime

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.response_tokens


NUMERIC = [f.name for f in fields(CubeRow)][8:22]


@dataclass(frozen=True)
class Day:
    day: date
    interactions: int
    cost: Decimal


@dataclass
class Facts:
    cube: list[CubeRow]
    days: list[Day]  # in the period, ascending
    months: dict[date, tuple[Decimal, int]]  # first of month -> (cost, interactions), in period
    before: dict[date, Decimal]  # month -> cost of the rows before the period (for the change)
    top_users: list[tuple[Any, ...]]  # (user_key, tenant_id, cost, interactions, tokens)
    users: int  # distinct (user key, tenant)
    #: (tenant, tool, kind, calls, distinct users, first, last) per LIMIT_FLAGS kind
    limits: list[tuple[Any, ...]] = field(default_factory=list)

    def total(self, name: str) -> Any:
        return sum((getattr(r, name) for r in self.cube), Decimal(0) if name == "cost" else 0)

    @property
    def first(self) -> datetime | None:
        return min((r.first for r in self.cube), default=None)

    @property
    def last(self) -> datetime | None:
        return max((r.last for r in self.cube), default=None)

    def distinct(self, name: str) -> int:
        return len({getattr(r, name) for r in self.cube})

    def rollup(self, key: Callable[[CubeRow], tuple[Any, ...]],
               rows: Iterable[CubeRow] | None = None) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Sum the numeric measures of the cube by ``key`` (e.g. by tool)."""
        out: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
            lambda: {n: Decimal(0) if n == "cost" else 0 for n in NUMERIC})
        for row in self.cube if rows is None else rows:
            sums = out[key(row)]
            for name in NUMERIC:
                sums[name] += getattr(row, name)
        return dict(out)


def load(store: Store, scope: Scope) -> Facts:
    cube = [CubeRow(*r) for r in store.rows(scope.sql(CUBE_SQL), scope.with_params(
        phi=PHI_CLASSES, controls=CONTROL_FLAGS, quality=QUALITY_FLAGS))]
    tenant = "tenant_id = {tenant:String} AND" if scope.tenant is not None else ""
    days: list[Day] = []
    months: dict[date, tuple[Decimal, int]] = {}
    before: dict[date, Decimal] = defaultdict(Decimal)
    for day, inside, n, cost in store.rows(DAILY_SQL.replace("{tenant}", tenant),
                                                   scope.params):
        month = day.replace(day=1)
        if inside:
            days.append(Day(day, int(n), Decimal(cost)))
            m_cost, m_n = months.get(month, (Decimal(0), 0))
            months[month] = (m_cost + Decimal(cost), m_n + int(n))
        else:
            before[month] += Decimal(cost)
    users = store.rows(scope.sql(USERS_SQL), scope.with_params(limit=TOP_USERS))
    limits = [tuple(r) for r in store.rows(scope.sql(LIMITS_SQL),
                                           scope.with_params(kinds=LIMIT_FLAGS))]
    return Facts(cube=cube, days=days, months=months, before=dict(before),
                 top_users=[tuple(r[:5]) for r in users],
                 users=int(users[0][5]) if users else 0, limits=limits)
