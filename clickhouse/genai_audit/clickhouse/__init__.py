"""The store: schema migrations, access, the interactions writer, reports."""

from __future__ import annotations

from genai_audit.clickhouse.errors import (
    ConfigError,
    MigrationError,
    QueryRejected,
    StoreError,
    StoreUnavailable,
)
from genai_audit.clickhouse.store import Store

__all__ = ["ConfigError", "MigrationError", "QueryRejected", "Store", "StoreError",
           "StoreUnavailable"]
