"""Which tenants a store knows: a tenant named on the command line that the store has never
seen is almost always a typo, and a check that answers "all OK" for it is a false OK.

A tenant is known when it has a record, a retention policy, a legal hold or an erasure. Each
look-up reads one row by the tables' leading ``tenant_id`` key, so it costs the same on a
billion-row store as on an empty one.
"""

from __future__ import annotations

from genai_audit.clickhouse.errors import ConfigError
from genai_audit.clickhouse.store import Store

_TABLES = ("interactions", "retention_policies", "legal_holds", "subject_erasures")


class UnknownTenant(ConfigError):
    """A tenant the store has never seen (exit 2)."""

    code = "unknown_tenant"


def tenant_known(store: Store, tenant: str) -> bool:
    return any(store.rows(f"SELECT 1 FROM {table} WHERE tenant_id = {{t:String}} LIMIT 1",  # noqa: S608 - fixed table names
                          {"t": tenant}) for table in _TABLES)


def known_tenants(store: Store, limit: int = 20) -> list[str]:
    """Up to ``limit`` known tenants, sorted (for the error message)."""
    union = " UNION DISTINCT ".join(f"SELECT DISTINCT tenant_id AS t FROM {table}"  # noqa: S608
                                    for table in _TABLES)
    return [str(r[0]) for r in store.rows(
        f"SELECT t FROM ({union}) ORDER BY t LIMIT {{n:UInt32}}", {"n": limit})]  # noqa: S608


def require_known_tenant(store: Store, tenant: str | None) -> None:
    """Raise ``UnknownTenant`` (naming the tenants the store does know) unless ``tenant`` is
    None or known."""
    if tenant is None or tenant_known(store, tenant):
        return
    known = known_tenants(store)
    hint = f"known tenants: {', '.join(known)}" if known else "the store has no tenants yet"
    raise UnknownTenant(f"unknown tenant {tenant!r}: no records, policies, holds or erasures "
                        f"in this store ({hint})")
