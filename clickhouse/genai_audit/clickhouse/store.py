"""Store access: one clickhouse-connect client for the embedded engine and for a server.

Every statement goes through ``Store.query`` / ``Store.command`` / ``Store.insert`` with
bound parameters; driver exceptions are mapped onto ``genai_audit.clickhouse.errors``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from clickhouse_connect.driver.query import QueryResult

from genai_audit.clickhouse.dsn import is_embedded, redact_dsn, resolve_database, resolve_dsn
from genai_audit.clickhouse.errors import ConfigError, StoreError, StoreUnavailable


class Store:
    """A connection to the audit database. Safe to share between threads."""

    def __init__(self, client: Client, dsn: str, database: str) -> None:
        self.client = client
        self.dsn = dsn
        self.database = database
        self._lock = threading.RLock()  # chDB's in-process engine wants one caller at a time

    @classmethod
    def open(cls, dsn: str | None = None, database: str | None = None) -> Store:
        """Connect, creating the database if needed (tables come from ``migrate``)."""
        resolved, db = resolve_dsn(dsn), resolve_database(database)
        client = _connect(resolved)
        try:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")  # db is a validated identifier
        except ClickHouseError as exc:
            raise _mapped(exc, f"cannot create database {db}") from exc
        client.database = db
        return cls(client, resolved, db)

    @property
    def embedded(self) -> bool:
        return is_embedded(self.dsn)

    @property
    def display_dsn(self) -> str:
        return redact_dsn(self.dsn)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None,
              settings: Mapping[str, Any] | None = None) -> QueryResult:
        with self._lock:
            try:
                return self.client.query(sql, parameters=dict(parameters or {}),
                                         settings=dict(settings or {}))
            except ClickHouseError as exc:
                raise _mapped(exc, "query failed") from exc

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None,
             settings: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.query(sql, parameters, settings).result_rows]

    def scalar(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        rows = self.rows(sql, parameters)
        return rows[0][0] if rows else None

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None,
                settings: Mapping[str, Any] | None = None) -> Any:
        with self._lock:
            try:
                return self.client.command(sql, parameters=dict(parameters or {}),
                                           settings=dict(settings or {}))
            except ClickHouseError as exc:
                raise _mapped(exc, "command failed") from exc

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str],
               settings: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            try:
                self.client.insert(table, rows, column_names=list(column_names),
                                   settings=dict(settings or {}))
            except ClickHouseError as exc:
                raise _mapped(exc, f"insert into {table} failed") from exc

    def close(self) -> None:
        with self._lock:
            self.client.close()


def _connect(dsn: str) -> Client:
    try:
        return clickhouse_connect.get_client(dsn=dsn)
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach {redact_dsn(dsn)}: {exc}") from exc
    except ClickHouseError as exc:
        message = str(exc)
        if "already initialized with path" in message:
            raise ConfigError(
                f"cannot open {redact_dsn(dsn)}: this process already owns another embedded "
                "store (chDB allows one data directory per process)") from exc
        raise StoreUnavailable(f"cannot open {redact_dsn(dsn)}: {message}") from exc


def _mapped(exc: ClickHouseError, what: str) -> StoreError:
    if isinstance(exc, OperationalError):
        return StoreUnavailable(f"{what}: store unreachable: {exc}")
    return StoreError(f"{what}: {exc}")
