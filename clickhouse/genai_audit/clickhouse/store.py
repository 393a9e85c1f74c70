"""Store access: one clickhouse-connect client for the embedded engine and for a server.

Every statement goes through ``Store.query`` / ``Store.command`` / ``Store.insert`` with
bound parameters; driver exceptions are mapped onto ``genai_audit.clickhouse.errors``.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import math
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import clickhouse_connect
from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from clickhouse_connect.driver.query import QueryResult

from genai_audit.clickhouse.dsn import (
    embedded_path,
    is_embedded,
    redact_dsn,
    resolve_database,
    resolve_dsn,
)
from genai_audit.clickhouse.errors import ConfigError, StoreError, StoreNotFound, StoreUnavailable

_log = logging.getLogger(__name__)

_OPENED_HERE: set[Path] = set()  # embedded data directories this process has opened
INSERT_TMP = ".insert-tmp"  # inside an embedded store: the engine's insert files
# inside an embedded store: the owner's read endpoint (host:port), while it serves one
READ_ENDPOINT_FILE = "genai-audit-read-endpoint"

# The embedded engine runs inside the application's process: one thread per insert leaves
# the other cores to the application. Two interleaved A/Bs of bench/request_overhead.py
# (2 cores, measured before the worker stopped sending one tiny insert after another, so
# with far more inserts than now): the spine added +0.32 and +0.25 ms per call with it,
# +0.45 and +0.55 without; span-to-row throughput was not lower (7,073 records/s with,
# 6,719 without).
EMBEDDED_INSERT_SETTINGS: Mapping[str, Any] = {"max_threads": 1}


class Store:
    """A connection to the audit database. Safe to share between threads."""

    def __init__(self, client: Client, dsn: str, database: str) -> None:
        self.client = client
        self.dsn = dsn
        self.database = database
        self._lock = threading.RLock()  # chDB's in-process engine wants one caller at a time
        # Column types per (table, columns) insert, described once: clickhouse-connect would
        # otherwise run a DESCRIBE before every insert (about 1.1 ms of the engine's CPU).
        self._column_types: dict[tuple[str, tuple[str, ...]], Sequence[ClickHouseType]] = {}

    @classmethod
    def open(cls, dsn: str | None = None, database: str | None = None, *,
             create: bool = True, timeout_s: float | None = None) -> Store:
        """Connect, creating the database if needed (tables come from ``migrate``).

        ``create=False`` (every read command): an embedded directory or a database that does
        not exist is a ``StoreNotFound``, never a new empty store that answers "nothing".

        ``timeout_s``: a server's connect and per-request read deadline (the driver's own
        defaults are 10 s and 300 s); the writers pass their export deadline."""
        resolved, db = resolve_dsn(dsn), resolve_database(database)
        path = embedded_path(resolved)
        if not create and path is not None and not path.is_dir():
            raise StoreNotFound(f"no store at {path} (check --dsn / GENAI_AUDIT_DSN, or create "
                                "one with `genai-audit init`)")
        client = _connect(resolved, timeout_s)
        try:  # check first: a least-privilege writer may use the database, not create it
            if not client.command(f"EXISTS DATABASE `{db}`"):  # db is a validated identifier
                if not create:
                    raise StoreNotFound(
                        f"no database {db} in the store at {redact_dsn(resolved)} (check "
                        "--database / GENAI_AUDIT_DATABASE, or create it with `genai-audit init`)")
                client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
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
        """Insert rows. Into the embedded engine with ``EMBEDDED_INSERT_SETTINGS`` first
        (the caller's settings win). The columns' types are looked up on the first insert
        and kept; a failed insert forgets them, so a retry after a schema change (a
        migration run by another process) looks them up again."""
        merged = {**(EMBEDDED_INSERT_SETTINGS if self.embedded else {}), **(settings or {})}
        key = (table, tuple(column_names))
        with self._lock:
            try:
                types = self._column_types.get(key)
                if types is None:
                    types = self.client.create_insert_context(table, list(key[1])).column_types
                    self._column_types[key] = types
                self.client.insert(table, rows, column_names=list(key[1]), column_types=types,
                                   settings=merged)
            except ClickHouseError as exc:
                self._column_types.pop(key, None)
                raise _mapped(exc, f"insert into {table} failed") from exc

    def raw_read(self, sql: str, parameters: Mapping[str, str], fmt: str
                 ) -> tuple[bytes, dict[str, str]]:
        """The embedded engine's output of ``sql`` in format ``fmt`` and its summary (rows
        and bytes read, as ClickHouse's ``X-ClickHouse-Summary``), for the owner's read
        interface. ``parameters`` are values in ClickHouse's text form, as an HTTP client
        sends them (``param_<name>``), handed to the engine unchanged. ``sql`` must be
        checked first (``readonly.read_statement``); it runs on the writer's connection,
        under this store's lock."""
        backend = getattr(self.client, "_backend", None)
        run = getattr(backend, "_run", None)
        if not self.embedded or run is None:
            raise StoreError("raw reads need the embedded engine of a clickhouse-connect "
                             "with the chDB backend")
        with self._lock:
            try:
                result = run(sql, fmt, params=dict(parameters), database=self.database)
            except ClickHouseError as exc:
                raise _mapped(exc, "query failed") from exc
        summary = {"read_rows": str(_stat(result, "rows_read")),
                   "read_bytes": str(_stat(result, "bytes_read")),
                   "written_rows": "0", "written_bytes": "0"}
        return bytes(result.bytes() or b""), summary

    def make_read_only(self) -> None:
        """From now on every statement on this connection runs with ``readonly = 1``: a
        session setting of the embedded engine's connection (``SET``), a setting sent with
        every request to a server; never text appended to a query. It cannot be undone (the
        engine refuses ``SET readonly = 0`` in read-only mode), so use a Store of its own.
        Checked by asking the engine, so a transport that dropped it is an error."""
        with self._lock:
            try:
                self.client.set_client_setting("readonly", "1")
            except ClickHouseError as exc:
                if "Cannot modify 'readonly'" not in str(exc):  # already read-only: checked next
                    raise _mapped(exc, "cannot make the connection read-only") from exc
        value = self.scalar("SELECT getSetting('readonly')")
        if str(value) != "1":
            raise StoreError(f"cannot make the connection read-only: readonly is {value}, "
                             "not 1")

    def close(self) -> None:
        with self._lock:
            self.client.close()


def _connect(dsn: str, timeout_s: float | None = None) -> Client:
    path = embedded_path(dsn)
    if path is not None:
        _check_not_in_use(path, dsn)
    deadlines: dict[str, Any] = {}
    if path is None and timeout_s is not None:  # the embedded engine has no network
        # the driver takes whole seconds (and refuses 0)
        seconds = max(1, math.ceil(timeout_s))
        deadlines = {"connect_timeout": min(10, seconds), "send_receive_timeout": seconds}
    try:
        client = clickhouse_connect.get_client(dsn=dsn, **deadlines)
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach {redact_dsn(dsn)}: {exc}") from exc
    except ClickHouseError as exc:
        message = str(exc)
        if "already initialized with path" in message:
            raise ConfigError(
                f"cannot open {redact_dsn(dsn)}: this process already owns another embedded "
                "store (chDB allows one data directory per process)") from exc
        raise StoreUnavailable(f"cannot open {redact_dsn(dsn)}: {message}") from exc
    if path is not None:
        _OPENED_HERE.add(path)
        keep_insert_files_in(path)
    return client


def keep_insert_files_in(path: Path) -> None:
    """Keep the embedded engine's insert files inside the store directory, and remove what
    a killed process left there.

    clickhouse-connect's chDB backend writes each insert's rows (ciphertext, pseudonyms,
    metadata) to a ``NamedTemporaryFile`` and runs ``INSERT ... FROM INFILE``; by default
    in the system temporary directory, where a process killed mid-insert leaves the file
    for good. Here they go to ``<store>/.insert-tmp`` (0700). Called once the engine holds
    the directory (one process per data directory), so nothing found there is in use.
    """
    directory = path / INSERT_TMP
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        for leftover in directory.iterdir():
            leftover.unlink(missing_ok=True)
    except OSError as exc:  # a store opened read-only: it inserts nothing
        _log.warning("cannot prepare %s for insert files (%s)", directory, type(exc).__name__)
        return
    try:
        from clickhouse_connect.driver._backend import chdb_backend
    except ImportError:  # a clickhouse-connect without the chDB backend: nothing to redirect
        return
    if not hasattr(chdb_backend, "tempfile"):
        _log.warning("clickhouse-connect's chDB backend changed: its insert files are not "
                     "redirected into the store directory")
        return
    chdb_backend.tempfile = SimpleNamespace(  # type: ignore[assignment]
        NamedTemporaryFile=functools.partial(tempfile.NamedTemporaryFile, dir=directory))


def _check_not_in_use(path: Path, dsn: str) -> None:
    """chDB allows one process per data directory; say so plainly instead of its engine error.

    The engine holds an exclusive lock on ``<dir>/status`` (which also records its PID)
    while it runs. A directory this process already opened is fine.
    """
    status = path / "status"
    if path in _OPENED_HERE or not status.exists():
        return
    try:
        with open(status, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = handle.read(64).decode("utf-8", "replace").split("\n", 1)[0]
                raise StoreUnavailable(
                    f"the embedded store {redact_dsn(dsn)} is in use by another process "
                    f"({owner.strip() or 'unknown PID'}); chDB allows one process per data "
                    f"directory: {_how_to_reach_owner(path)}") from None
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return  # unreadable status file: let the engine report what is wrong


def _stat(result: Any, name: str) -> int:
    value = getattr(result, name, None)
    return int(value()) if callable(value) else 0


def _how_to_reach_owner(path: Path) -> str:
    """What to do about an owned store: its owner's read interface when it serves one
    (``serve --read-endpoint`` writes it into the store directory), else stop the owner."""
    try:
        endpoint = (path / READ_ENDPOINT_FILE).read_text("utf-8").strip()
    except OSError:
        endpoint = ""
    host, sep, port = endpoint.rpartition(":")
    if sep and port.isdigit() and host and all(c.isalnum() or c in ".:[]-" for c in host):
        return (f"its owner serves reads at {endpoint}: run read commands with --dsn "
                f"http://auditor:TOKEN@{endpoint} (TOKEN: a reader token of the owner's "
                "readers file)")
    return ("stop that process, run it with --read-endpoint to serve reads, or use a "
            "ClickHouse server DSN")


def _mapped(exc: ClickHouseError, what: str) -> StoreError:
    if isinstance(exc, OperationalError):
        return StoreUnavailable(f"{what}: store unreachable: {exc}")
    return StoreError(f"{what}: {exc}")


def period_conditions(column: str, since: datetime | None, until: datetime | None
                      ) -> tuple[list[str], dict[str, Any]]:
    """Conditions bounding ``column`` (an identifier the package fixes, never input) to
    ``[since, until)``, with their bound parameters ``since``/``until``; none when open."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if since is not None:
        conds.append(column + " >= {since:DateTime64(6, 'UTC')}")
        params["since"] = since
    if until is not None:
        conds.append(column + " < {until:DateTime64(6, 'UTC')}")
        params["until"] = until
    return conds, params
