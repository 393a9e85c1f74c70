"""``ClickHouseSpanExporter``: ended GenAI spans -> the record pipeline -> ``interactions``.

Registered as the ``genai_audit`` traces exporter (``OTEL_TRACES_EXPORTER=genai_audit``).
Follows the SDK's exporter contract: ``export`` returns SUCCESS or FAILURE and never raises;
retries are bounded (count and one deadline) with exponential backoff; the batch keeps one
deduplication token across retries so a retried insert never duplicates rows; its own
store I/O runs with instrumentation suppressed so it is not traced into itself.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from genai_audit.clickhouse.dsn import embedded_path, resolve_dsn
from genai_audit.clickhouse.errors import StoreError, StoreUnavailable
from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter
from genai_audit.config import Settings
from genai_audit.keystore import KeyStore, LocalKeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.record import AuditRecord

_log = logging.getLogger(__name__)

_BACKOFF_BASE_S = 0.05
_BACKOFF_MAX_S = 2.0


def default_keystore_dir(settings: Settings) -> Path:
    """``<store dir>-keys`` beside an embedded store; ``./genai-audit-keys`` for a server."""
    if settings.keystore_dir:
        return Path(settings.keystore_dir).expanduser().resolve()
    path = embedded_path(resolve_dsn(settings.dsn))
    return Path(str(path) + "-keys") if path else Path("genai-audit-keys").resolve()


class ClickHouseSpanExporter(SpanExporter):
    """Export GenAI spans as audit records. Non-GenAI spans are ignored."""

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 pipeline: RecordPipeline | None = None, keys: KeyStore | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings or Settings.load()
        self._store = store
        self._owns_store = store is None
        self._pipeline = pipeline
        self._keys = keys
        self._writer: InteractionWriter | None = None
        self._sleep = sleep
        self._lock = threading.Lock()
        self._shutdown = False
        self.stats = {"exported": 0, "failed_batches": 0, "retries": 0}

    # -- SDK contract ---------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                records = self._get_pipeline().build(spans)
                self.write_records(records)
            return SpanExportResult.SUCCESS
        except Exception as exc:  # never raise into the SDK
            self.stats["failed_batches"] += 1
            _log.error("genai-audit export of %d span(s) failed: %s: %s", len(spans),
                       type(exc).__name__, _safe_message(exc))
            return SpanExportResult.FAILURE
        finally:
            detach(token)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Records are not buffered here (the span processor owns the queue); this signs
        ledger checkpoints over everything written so far."""
        try:
            with self._lock:
                if self._writer is not None and self._writer.ledger is not None:
                    self._writer.ledger.flush()
            return True
        except Exception as exc:
            _log.error("genai-audit ledger flush failed: %s", type(exc).__name__)
            return False

    def warm_up(self) -> bool:
        """Open the store and build the pipeline now (at start-up), not on the first export.

        Fails fast in the log instead of on the first LLM call, and opens the embedded
        engine before the caller registers its exit flush: chDB closes its connections
        from an exit hook, and exit hooks run last-registered first. Never raises.
        """
        try:
            with self._lock:
                self._get_store()
                self._get_pipeline()
            return True
        except Exception as exc:
            _log.error("genai-audit: store not ready at start-up (%s: %s); will retry on export",
                       type(exc).__name__, _safe_message(exc))
            return False

    def shutdown(self) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            try:
                if self._writer is not None and self._writer.ledger is not None:
                    self._writer.ledger.close()
            except Exception as exc:
                _log.error("genai-audit final ledger checkpoint failed: %s",
                           type(exc).__name__)
            if self._store is not None and self._owns_store:
                self._store.close()

    # -- records ---------------------------------------------------------------------
    def write_records(self, records: Sequence[AuditRecord]) -> None:
        """Insert finished records, retrying transient failures within the export deadline."""
        if not records:
            return
        deadline = time.monotonic() + self.settings.export_timeout_ms / 1000
        attempt = 0
        writer = self._get_writer()
        batch = writer.prepare(records)  # ledger positions are fixed here, once
        while True:
            try:
                writer.insert(batch)
                writer.committed(batch)
                self.stats["exported"] += len(records)
                return
            except StoreError as exc:
                attempt += 1
                delay = min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2 ** (attempt - 1))
                retryable = isinstance(exc, StoreUnavailable) or _is_transient(exc)
                if (not retryable or attempt > self.settings.max_retries
                        or time.monotonic() + delay > deadline):
                    writer.failed(batch)
                    raise
                self.stats["retries"] += 1
                _log.warning("insert of %d record(s) failed (attempt %d), retrying in %.2fs",
                             len(records), attempt, delay)
                self._sleep(delay)

    def _get_store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.dsn, self.settings.database)
            migrate(self._store)
        return self._store

    def _get_writer(self) -> InteractionWriter:
        if self._writer is None:
            store = self._get_store()
            ledger = Ledger(store, self._get_keys().signing_key(), row_columns=COLUMNS,
                            checkpoint_records=self.settings.ledger_checkpoint_records,
                            checkpoint_seconds=self.settings.ledger_checkpoint_seconds)
            self._writer = InteractionWriter(store, ledger)
        return self._writer

    def _get_keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = LocalKeyStore(default_keystore_dir(self.settings))
        return self._keys

    def _get_pipeline(self) -> RecordPipeline:
        if self._pipeline is None:
            self._pipeline = default_pipeline(self.settings, self._get_keys())
        return self._pipeline


def _is_transient(exc: StoreError) -> bool:
    text = str(exc)
    return any(code in text for code in ("TIMEOUT", "TOO_MANY_PARTS", "MEMORY_LIMIT_EXCEEDED",
                                         "Connection", "connection"))


_CODE_RE = re.compile(r"Code: (\d+)|\(([A-Z_]{3,})\)")


def _safe_message(exc: BaseException) -> str:
    """The error's ClickHouse code and name only: an error text may quote inserted content."""
    found = [a or b for a, b in _CODE_RE.findall(str(exc))]
    return " ".join(dict.fromkeys(found)) or "see debug log"
