"""What the owner's read interface runs: one checked read-only statement per request.

For each request:

1. ``readonly.read_statement`` checks the text (one statement as ClickHouse parses it,
   SELECT / SHOW / DESCRIBE / EXISTS / EXPLAIN AST, no table function, no SETTINGS, no
   INTO OUTFILE, FORMAT only at the end and from ``OUTPUT_FORMATS``).
2. The settings the client sent as URL parameters are kept only if ``CLIENT_SETTINGS``
   names them (values: short plain words); ClickHouse's transport parameters are ignored;
   anything else is refused. ``readonly`` and the reader's row filter are never the
   client's to set.
3. A SELECT runs with ``SETTINGS readonly = 1`` (and, for a tenant-scoped auditor,
   ``additional_table_filters`` restricting every table of the database that has a
   ``tenant_id`` column to that tenant, and hiding the rows of the other tables but
   ``schema_migrations``: views and subqueries read those tables, so they are filtered
   too) appended to the checked text; other kinds only read metadata.
4. The engine's bytes in the requested format are the answer, under the store's lock.

Content columns hold ciphertext (the keys live in the keystore, which the engine cannot
read): no statement here decrypts anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genai_audit.clickhouse.errors import QueryRejected, StoreError
from genai_audit.clickhouse.rbac import quote_literal
from genai_audit.clickhouse.readonly import OUTPUT_FORMATS, read_statement
from genai_audit.clickhouse.store import Store
from genai_audit.exporter.gateway.read_auth import Reader

# Settings a client may send (clickhouse-connect sends the first two after connecting).
CLIENT_SETTINGS = frozenset({
    "date_time_input_format", "cast_string_to_dynamic_use_inference", "max_result_rows",
    "max_result_bytes", "result_overflow_mode", "max_execution_time", "max_block_size",
    "date_time_output_format", "output_format_json_quote_64bit_integers",
    "output_format_json_quote_denormals", "output_format_json_named_tuples_as_objects",
    "output_format_decimal_trailing_zeros", "session_timezone", "use_client_time_zone",
    "max_memory_usage"})
# HTTP-interface parameters that are not settings of the query (ignored, as the owner
# decides them: readonly, the database, compression, progress headers, sessions).
TRANSPORT_PARAMETERS = frozenset({
    "query", "database", "default_format", "user", "password", "quota_key", "query_id",
    "session_id", "session_timeout", "session_check", "wait_end_of_query", "compress",
    "decompress", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "enable_http_compression", "client_protocol_version", "readonly", "buffer_size",
    "cancel_http_readonly_queries_on_client_close", "http_zlib_compression_level"})
# Tables every reader sees whole: the schema version a read command checks first.
SHARED_TABLES = frozenset({"schema_migrations"})
_VALUE = re.compile(r"^[A-Za-z0-9_./+:-]{0,64}$")
DEFAULT_FORMAT = "TabSeparated"
MAX_RESULT_BYTES = 256 << 20  # one answer, held in memory before it is sent
MAX_MEMORY_BYTES = 1 << 30  # one read's working memory in the engine
MAX_EXECUTION_S = 120  # one read, holding the store's lock (the writer waits meanwhile)


class ReadRefused(Exception):
    """A request the read interface refuses: ClickHouse's error ``code``, HTTP ``status``."""

    def __init__(self, message: str, code: int, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class ReadAnswer:
    body: bytes
    fmt: str
    summary: Mapping[str, str]


class ReadService:
    """Reads of the owner's ``store``. Every SELECT is bounded by the owner: its result
    (``max_result_bytes``: the answer is held in memory before it is sent; the engine
    checks it on rows read from tables), its memory (``max_memory_usage``, which also
    stops a row expanded by ``arrayJoin``) and its run time (``max_execution_time``: a
    read holds the store's lock, and the writer waits); a client may ask for less, never
    for more."""

    def __init__(self, store: Store, *, max_result_bytes: int = MAX_RESULT_BYTES,
                 max_memory_bytes: int = MAX_MEMORY_BYTES,
                 max_execution_s: int = MAX_EXECUTION_S) -> None:
        self.store = store
        self.bounds = {"max_result_bytes": max_result_bytes,
                       "max_memory_usage": max_memory_bytes,
                       "max_execution_time": max_execution_s}

    def run(self, reader: Reader, sql: str, parameters: Mapping[str, str],
            client_settings: Mapping[str, str], default_format: str | None = None
            ) -> ReadAnswer:
        settings = whitelisted(client_settings)
        try:
            statement = read_statement(self.store, sql, parameters)
        except QueryRejected as exc:
            raise ReadRefused(f"query rejected: {exc}", 164, 403) from None
        fmt = statement.fmt or default_format or DEFAULT_FORMAT
        if statement.fmt is None and fmt not in OUTPUT_FORMATS:
            raise ReadRefused(f"default_format {fmt} is not offered here", 73, 400)
        text = statement.text
        if statement.kind == "SELECT":
            for name, bound in self.bounds.items():
                asked = int(settings[name]) if str(settings.get(name, "")).isdigit() else 0
                settings[name] = str(min(asked, bound) if asked > 0 else bound)
            settings["readonly"] = "1"
            if reader.tenant is not None:
                settings["additional_table_filters"] = self._tenant_filter(reader.tenant)
            clause = ", ".join(f"{name} = {quote_literal(value)}" if name !=
                               "additional_table_filters" else f"{name} = {value}"
                               for name, value in settings.items())
            text = f"{text}\nSETTINGS {clause}"
        text = f"{text}\nFORMAT {fmt}"
        try:
            body, summary = self.store.raw_read(text, parameters, fmt)
        except StoreError as exc:
            raise ReadRefused(engine_message(exc), engine_code(exc), 500) from None
        return ReadAnswer(body, fmt, summary)

    def _tenant_filter(self, tenant: str) -> str:
        """``additional_table_filters`` for one tenant, keyed ``database.table``: every
        table (not view) of the database with a ``tenant_id`` column shows that tenant's
        rows; every other table but ``schema_migrations`` shows none (``control_events``,
        ``archive_runs``: the owner's operations, not a tenant's)."""
        tables = self.store.rows(
            "SELECT name, name IN (SELECT table FROM system.columns WHERE database = "
            "{db:String} AND name = 'tenant_id') FROM system.tables WHERE database = "
            "{db:String} AND engine NOT LIKE '%View' ORDER BY name", {"db": self.store.database})
        condition = "tenant_id = " + quote_literal(tenant)
        entries = ", ".join(f"{quote_literal(self.store.database + '.' + str(name))}: "
                            f"{quote_literal(condition if keyed else '0')}"
                            for name, keyed in tables if name not in SHARED_TABLES)
        return "{" + entries + "}"


def whitelisted(client_settings: Mapping[str, str]) -> dict[str, Any]:
    """The client's settings this interface passes on; ``ReadRefused`` for one it does not
    offer (never passed through wholesale)."""
    kept: dict[str, Any] = {}
    for name, value in client_settings.items():
        if name in TRANSPORT_PARAMETERS:
            continue
        if name not in CLIENT_SETTINGS:
            raise ReadRefused(f"setting {name} is not offered by this read interface "
                              "(the owner decides readonly and row filters)", 115, 400)
        if not _VALUE.match(value):
            raise ReadRefused(f"setting {name}: value must be a short plain word", 115, 400)
        kept[name] = value
    return kept


def engine_code(exc: StoreError) -> int:
    match = re.search(r"Code: (\d+)\.", str(exc))
    return int(match.group(1)) if match else 1002


def engine_message(exc: StoreError) -> str:
    """The engine's own text from its ``Code: N. DB::Exception: ...`` on."""
    text = str(exc)
    start = text.find("Code: ")
    return text[start:] if start >= 0 else text
