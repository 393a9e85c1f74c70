"""What a report covers (tenant and period) as bound SQL, plus a look at the store's catalog.

Every report query filters ``interactions`` through ``Scope.where`` and passes
``Scope.params``: the tenant and the period are always bound parameters, never text in the
SQL. The optional tenant filter is one of two constant fragments, chosen in Python.
Sections that read tables built by other features check ``has_table`` first, so a store
without them gets a plain "not available" instead of an error or an invented number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genai_audit.clickhouse.reports.model import Period
from genai_audit.clickhouse.store import Store

UNATTRIBUTED_TENANT = "_unattributed"

_PERIOD = ("event_timestamp >= {start:DateTime64(6, 'UTC')} "
           "AND event_timestamp < {end:DateTime64(6, 'UTC')}")
_TENANT = "tenant_id = {tenant:String}"


@dataclass(frozen=True)
class Scope:
    tenant: str | None
    period: Period

    @property
    def where(self) -> str:
        """``WHERE`` body for ``interactions`` (and views over it) in this scope."""
        return f"{_TENANT} AND {_PERIOD}" if self.tenant is not None else _PERIOD

    @property
    def period_where(self) -> str:
        """The period only (store-wide facts such as unattributed spans)."""
        return _PERIOD

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"start": self.period.start, "end": self.period.end}
        if self.tenant is not None:
            params["tenant"] = self.tenant
        return params

    def with_params(self, **extra: Any) -> dict[str, Any]:
        return {**self.params, **extra}

    def sql(self, template: str) -> str:
        """Fill the constant ``{where}`` / ``{period_where}`` slots of a query template.

        Only these fixed fragments are spliced in; values stay ``{name:Type}`` parameters.
        (``str.format`` is not used: it would trip over the parameters' braces.)
        """
        return (template.replace("{where}", self.where)
                .replace("{period_where}", self.period_where))


def has_table(store: Store, name: str) -> bool:
    """Does the store's database hold table or view ``name``? (bound, not interpolated)"""
    return bool(store.scalar(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {name:String}",
        {"db": store.database, "name": name}))


def table_columns(store: Store, name: str) -> set[str]:
    return {str(r[0]) for r in store.rows(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {name:String}",
        {"db": store.database, "name": name})}


def missing_columns(store: Store, name: str, needed: Mapping[str, str]) -> list[str]:
    """Columns of ``needed`` (name -> purpose) that table ``name`` lacks, sorted."""
    present = table_columns(store, name)
    return sorted(c for c in needed if c not in present)
