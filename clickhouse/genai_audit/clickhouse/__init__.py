"""The store: schema migrations, access, the interactions writer, reports."""

from __future__ import annotations

from genai_audit.clickhouse.errors import (
    ConfigError,
    MigrationError,
    QueryRejected,
    StoreError,
    StoreUnavailable,
)

__all__ = ["ConfigError", "MigrationError", "QueryRejected", "Store", "StoreError",
           "StoreUnavailable"]


def __getattr__(name: str) -> object:
    """``Store`` on first use: importing the package (its errors, for one) must not load
    the ClickHouse driver (PEP 562)."""
    if name == "Store":
        from genai_audit.clickhouse.store import Store
        return Store
    raise AttributeError(name)
