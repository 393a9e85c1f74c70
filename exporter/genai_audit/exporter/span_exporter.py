"""``ClickHouseSpanExporter``: ended GenAI spans -> the record pipeline -> ``interactions``.

Registered as the ``genai_audit`` traces exporter (``OTEL_TRACES_EXPORTER=genai_audit``).
Follows the SDK's exporter contract: ``export`` returns SUCCESS or FAILURE and never raises;
retries are bounded (count and one deadline) with exponential backoff; the batch keeps one
deduplication token across retries so a retried insert never duplicates rows; its own
store I/O runs with instrumentation suppressed so it is not traced into itself.

When the store stays unreachable past the retries, the batch goes to the on-disk spool
(``exporter/spool.py``) and counts as written; while the spool holds batches, new ones
queue behind them (order kept) and each write first tries to drain it. ``write_records``
is the one place a finished record is written, for the in-process path and the gateway.

Its parts (pipeline, store policies, ledgered writer with the write-time hold copy,
maintenance) come from the composition root, ``genai_audit.processor.compose``; when the
exporter opened the store itself it owns it, and starts the store's maintenance.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from genai_audit.clickhouse.dedup import RecentIds, key
from genai_audit.clickhouse.dsn import embedded_path, resolve_dsn
from genai_audit.clickhouse.errors import StoreError, StoreUnavailable
from genai_audit.clickhouse.ledger.log import PreparedBatch
from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import InteractionWriter
from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.config import Settings
from genai_audit.exporter.spool import Spool
from genai_audit.keystore import KeyStore, open_keystore
from genai_audit.processor.compose import Composition, compose
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.record import AuditRecord

_log = logging.getLogger(__name__)

_BACKOFF_BASE_S = 0.05
_BACKOFF_MAX_S = 2.0
_DRAIN_INTERVAL_S = 1.0  # while spooling, retry the store at most this often


def default_spool_dir(settings: Settings) -> Path:
    """``<store dir>-spool`` beside an embedded store; ``./genai-audit-spool`` for a server."""
    if settings.spool_dir:
        return Path(settings.spool_dir).expanduser().resolve()
    path = embedded_path(resolve_dsn(settings.dsn))
    return Path(str(path) + "-spool") if path else Path("genai-audit-spool").resolve()


class ClickHouseSpanExporter(SpanExporter):
    """Export GenAI spans as audit records. Non-GenAI spans are ignored."""

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 pipeline: RecordPipeline | None = None, keys: KeyStore | None = None,
                 sleep: Callable[[float], None] = time.sleep, spool: Spool | None = None,
                 skip_stored: bool = False, writer: InteractionWriter | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        """``store``, ``pipeline``, ``keys``, ``writer``: injected parts (tests, benches, the
        gateway); each defaults to the composition root's for ``settings``. ``writer``
        replaces the ledgered writer (a bench measures the pipeline without the ledger that
        way). ``clock``: application time for the composed parts (policies, holds, ledger
        timers, maintenance)."""
        self.settings = settings or Settings.load()
        if writer is not None and store is not None and writer.store is not store:
            raise ValueError("writer and store must be the same store")
        self._store = writer.store if writer is not None else store
        self._owns_store = self._store is None
        self._pipeline = pipeline
        self._keys = keys
        self._writer = writer
        self._clock = clock
        self._composition: Composition | None = None
        self._compose_lock = threading.Lock()  # writer thread and owner socket both ask
        self._sleep = sleep
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._spool = spool
        # gateway: drop records a re-batched replay resends (memory first, then the store)
        self._recent = RecentIds() if skip_stored else None
        self._last_drain = 0.0
        self._shutdown = False
        self.stats = {"exported": 0, "failed_batches": 0, "retries": 0, "spooled": 0,
                      "drained": 0, "duplicates": 0}

    # -- SDK contract ---------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Build the batch's records, then write them (the two stages below, in turn)."""
        records = self.build(spans)
        return SpanExportResult.FAILURE if records is None else self.write(records)

    # -- the two stages (ComplianceSpanProcessor overlaps them across batches) ---------
    def build(self, spans: Sequence[ReadableSpan]) -> list[AuditRecord] | None:
        """Spans -> finished records (the pipeline); None when the batch cannot be built.
        One caller at a time. Never raises."""
        if self._shutdown:
            return None
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                return self._get_pipeline().build(spans)
        except Exception as exc:  # never raise into the SDK
            self._failed(len(spans), exc)
            return None
        finally:
            detach(token)

    def write(self, records: Sequence[AuditRecord]) -> SpanExportResult:
        """Make built records durable (``write_records``); SUCCESS or FAILURE, never raises."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            self.write_records(records)
            return SpanExportResult.SUCCESS
        except Exception as exc:  # never raise into the SDK
            self._failed(len(records), exc)
            return SpanExportResult.FAILURE
        finally:
            detach(token)

    def _failed(self, count: int, exc: Exception) -> None:
        self.stats["failed_batches"] += 1
        _log.error("genai-audit export of %d span(s) failed: %s: %s", count,
                   type(exc).__name__, _safe_message(exc))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Records are not buffered here (the span processor owns the queue); this signs
        ledger checkpoints over everything written so far."""
        if not self._write_lock.acquire(timeout=max(0.0, timeout_millis / 1000)):
            return False  # a write is still in flight at the deadline
        try:
            if self._writer is not None and self._writer.ledger is not None:
                self._writer.ledger.flush()
            return True
        except Exception as exc:
            _log.error("genai-audit ledger flush failed: %s", type(exc).__name__)
            return False
        finally:
            self._write_lock.release()

    def warm_up(self) -> bool:
        """Open the store and build the pipeline now (at start-up), not on the first export.

        Fails fast in the log instead of on the first LLM call, and opens the embedded
        engine before the caller registers its exit flush: chDB closes its connections
        from an exit hook, and exit hooks run last-registered first. Never raises.
        """
        try:
            with self._lock:
                self._get_store()
                pipeline = self._get_pipeline()
            self._warm_stages(pipeline)
            return True
        except Exception as exc:
            _log.error("genai-audit: store not ready at start-up (%s: %s); will retry on export",
                       type(exc).__name__, _safe_message(exc))
            return False

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Drain the spool, sign the final checkpoints, close the store: after any build or
        write in flight, but never past ``timeout_millis`` (a hung store must not hang the
        application's exit; what was not written stays in the spool or is logged)."""
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            _log.error("genai-audit shutdown: a batch is still being built at the deadline")
            self._shutdown = True
            return
        try:
            if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                _log.error("genai-audit shutdown: a write is still in flight at the deadline; "
                           "final ledger checkpoints not signed")
                self._shutdown = True
                return
            try:
                self._shutdown_locked()
            finally:
                self._write_lock.release()
        finally:
            self._lock.release()

    def _shutdown_locked(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        if self._composition is not None and self._composition.owner is not None \
                and self._composition.owner.maintenance is not None:
            self._composition.owner.maintenance.stop()
        if self._spool is not None:
            self.drain_spool(force=True)
        try:
            if self._writer is not None and self._writer.ledger is not None:
                self._writer.ledger.close()  # the final checkpoints
        except Exception as exc:
            _log.error("genai-audit final ledger checkpoint failed: %s",
                       type(exc).__name__)
        if self._store is not None and self._owns_store:
            self._store.close()

    # -- records ---------------------------------------------------------------------
    @property
    def pipeline(self) -> RecordPipeline:
        return self._get_pipeline()

    @property
    def composition(self) -> Composition:
        """The composed parts (built on first use; opens the store)."""
        return self._compose()

    def counts(self) -> dict[str, int]:
        """``stats`` and the owner's background counters (maintenance, checkpoints)."""
        background = self._composition.stats() if self._composition is not None else {}
        if self._writer is not None and self._writer.ledger is not None:
            background["checkpoint_failures"] = self._writer.ledger.stats[
                "checkpoint_failures"]
        return {**self.stats, **background}

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            self._spool = Spool(default_spool_dir(self.settings),
                                self.settings.spool_max_mb * 1024 * 1024)
        return self._spool

    def write_records(self, records: Sequence[AuditRecord]) -> str:
        """Make finished records durable: ``"stored"`` in the store or ``"spooled"`` on disk.

        Raises ``SpoolFull`` when the store is unreachable and the spool is at its bound,
        and ``StoreError`` for a failure retrying cannot fix.
        """
        if not records:
            return "stored"
        with self._write_lock:
            after_outage = bool(self.spool.pending())
            if after_outage and not self.drain_spool():
                self.spool.append(records)  # keep order behind what is already spooled
                self.stats["spooled"] += len(records)
                return "spooled"
            try:
                self._insert(records, replay=after_outage)
            except StoreError as exc:
                if not (isinstance(exc, StoreUnavailable) or _is_transient(exc)):
                    raise
                self.spool.append(records)
                self.stats["spooled"] += len(records)
                _log.warning("store unreachable (%s): %d record(s) spooled to %s",
                             _safe_message(exc), len(records), self.spool.directory)
                return "spooled"
            return "stored"

    def drain_spool(self, force: bool = False) -> bool:
        """Write spooled batches to the store; True when the spool is empty afterwards."""
        with self._write_lock:
            if not self.spool.pending():
                return True
            now = time.monotonic()
            if not force and now - self._last_drain < _DRAIN_INTERVAL_S:
                return False
            self._last_drain = now
            try:
                drained = self.spool.drain(self._insert_replayed)
            except StoreError as exc:
                _log.info("spool drain paused: store still failing (%s)", _safe_message(exc))
                return False
            if drained:
                self.stats["drained"] += drained
                _log.warning("store is back: %d spooled record(s) written", drained)
            return not self.spool.pending()

    def _fresh(self, records: Sequence[AuditRecord], replay: bool) -> list[AuditRecord]:
        if self._recent is not None:
            fresh = self._recent.fresh(self._get_store(), records, replay=replay)
        elif replay:
            fresh = RecentIds(capacity=0).fresh(self._get_store(), records, replay=True)
        else:
            fresh = list({key(r): r for r in records}.values())  # a span twice in a batch: once
        self.stats["duplicates"] += len(records) - len(fresh)
        return fresh

    def _insert_batch(self, batch: PreparedBatch, fresh: Sequence[AuditRecord]) -> None:
        """One insert attempt of a prepared batch (its ledger positions are fixed)."""
        writer = self._get_writer()
        writer.insert(batch)
        writer.committed(batch)
        self.stats["exported"] += len(fresh)
        if self._recent is not None:
            self._recent.remember(fresh)

    def _insert_replayed(self, records: Sequence[AuditRecord]) -> None:
        fresh = self._fresh(records, replay=True)
        if not fresh:
            return
        batch = self._get_writer().prepare(fresh)
        try:
            self._insert_batch(batch, fresh)
        except StoreError:
            self._get_writer().failed(batch)
            raise

    def _insert(self, records: Sequence[AuditRecord], *, replay: bool = False) -> None:
        """Insert, retrying transient failures within the export deadline. The batch is
        prepared once (ledger positions, leaf hashes, deduplication token) and every retry
        inserts it unchanged; when it is given up, its ledger log is sealed."""
        deadline = time.monotonic() + self.settings.export_timeout_ms / 1000
        attempt = 0
        fresh = self._fresh(records, replay)
        if not fresh:
            return
        batch = self._get_writer().prepare(fresh)
        while True:
            try:
                self._insert_batch(batch, fresh)
                return
            except StoreError as exc:
                attempt += 1
                delay = min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2 ** (attempt - 1))
                retryable = isinstance(exc, StoreUnavailable) or _is_transient(exc)
                if (not retryable or attempt > self.settings.max_retries
                        or time.monotonic() + delay > deadline):
                    self._get_writer().failed(batch)
                    raise
                self.stats["retries"] += 1
                _log.warning("insert of %d record(s) failed (attempt %d), retrying in %.2fs",
                             len(records), attempt, delay)
                self._sleep(delay)

    def open_store(self) -> Store:
        """Connect (and migrate) now rather than at the first write."""
        return self._get_store()

    def _get_store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.dsn, self.settings.database,
                                     timeout_s=self.settings.export_timeout_ms / 1000)
            migrate(self._store, self.settings.cluster)
        return self._store

    def _compose(self) -> Composition:
        with self._compose_lock:
            if self._composition is None:
                self._composition = compose(self.settings, store=self._get_store(),
                                            keys=self._get_keys(), clock=self._clock)
                if self._owns_store:  # this process owns the store: it runs maintenance
                    self._composition.start()
            return self._composition

    def _get_writer(self) -> InteractionWriter:
        if self._writer is None:
            owner = self._compose().owner
            assert owner is not None  # compose(store=...) always builds the owner's parts
            self._writer = owner.writer
        return self._writer

    def _get_keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = open_keystore(self.settings)
        return self._keys

    def _warm_stages(self, pipeline: RecordPipeline) -> None:
        """Let stages that load models (redaction) load them now, on a daemon thread, so
        neither the first batch nor a synchronous tool's first write waits for all of it."""
        def warm() -> None:
            for stage in pipeline.stages:
                method = getattr(stage, "warm", None)
                if callable(method):
                    try:
                        method()
                    except Exception as exc:  # the first batch meets it again, fails closed
                        _log.warning("genai-audit: stage %s could not warm up (%s)",
                                     getattr(stage, "name", "?"), type(exc).__name__)
        # Import spaCy here, on the calling thread (about 0.35 s); only the model load runs in
        # the background. spaCy's imports overlap the instrumentors' (httpx, pydantic...),
        # which opentelemetry-instrument runs on the main thread at the same moment, and two
        # threads importing one module concurrently can hand the application a partly
        # initialised one ("partially initialized module 'httpx' has no attribute 'URL'",
        # seen in the interop matrix).
        with contextlib.suppress(ImportError):
            importlib.import_module("spacy")
        threading.Thread(target=warm, name="genai-audit-warmup", daemon=True).start()

    def _get_pipeline(self) -> RecordPipeline:
        if self._pipeline is None:
            self._pipeline = self._compose().pipeline
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
