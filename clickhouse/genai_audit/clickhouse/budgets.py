"""Budget changes in ``budget_changes`` (append-only, every change kept with who and why).

The limiter (``genai_audit.instrumentation.limits``) enforces budgets from its settings and
from overrides in its shared store; ``genai-audit budget set`` applies an override there and
records it here, so the report's reader can see who raised which budget, when and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from genai_audit.clickhouse.store import Store

TABLE = "budget_changes"
WHOLE_TENANT = "*"


@dataclass(frozen=True)
class BudgetChange:
    tenant_id: str
    tool_name: str  # '*': the tenant's whole budget
    budget_usd: Decimal
    previous_usd: Decimal | None
    changed_by: str
    reason: str
    changed_at: datetime


def record_budget_change(store: Store, change: BudgetChange) -> None:
    """Append one change (validated: tenant, actor and reason are required)."""
    for name, value in (("tenant", change.tenant_id), ("tool", change.tool_name),
                        ("actor", change.changed_by), ("reason", change.reason)):
        if not value.strip():
            raise ValueError(f"a budget change needs a {name}")
    if not change.budget_usd.is_finite() or change.budget_usd <= 0:
        raise ValueError(f"a budget must be > 0 USD, got {change.budget_usd}")
    store.insert(TABLE, [[change.tenant_id, change.tool_name, change.budget_usd,
                          change.previous_usd, change.changed_by, change.reason,
                          change.changed_at]],
                 ["tenant_id", "tool_name", "budget_usd", "previous_usd", "changed_by",
                  "reason", "changed_at"])


def budget_history(store: Store, tenant_id: str | None = None) -> list[BudgetChange]:
    """Every recorded change, oldest first (one tenant's, or all)."""
    rows = store.rows(
        "SELECT tenant_id, tool_name, budget_usd, previous_usd, changed_by, reason, changed_at "
        "FROM budget_changes WHERE {all:Bool} OR tenant_id = {tenant:String} "
        "ORDER BY changed_at, tenant_id, tool_name",
        {"all": tenant_id is None, "tenant": tenant_id or ""})
    return [BudgetChange(str(t), str(tool), Decimal(usd),
                         None if prev is None else Decimal(prev), str(by), str(why), at)
            for t, tool, usd, prev, by, why, at in rows]
