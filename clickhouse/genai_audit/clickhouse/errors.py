"""One exception hierarchy for the store, each with a stable code for logs and exit paths."""

from __future__ import annotations


class StoreError(Exception):
    """Base: something about the ClickHouse store went wrong."""

    code = "store_error"


class ConfigError(StoreError):
    """A DSN, database name or option that cannot be used (a usage error, exit 2)."""

    code = "config_error"


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened (retryable)."""

    code = "store_unavailable"


class QueryRejected(StoreError):
    """A query refused before it ran (not read-only, several statements...)."""

    code = "query_rejected"


class MigrationError(StoreError):
    """The schema could not be created or migrated."""

    code = "migration_error"


class StoreNotFound(ConfigError):
    """A read was pointed at a store or database that does not exist (exit 2): reads never
    create one, so a mistyped DSN is an error, not an empty answer."""

    code = "store_not_found"
