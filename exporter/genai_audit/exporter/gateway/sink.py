"""Where a worker's finished records go: the store owner, which makes them durable.

chDB allows one process per data directory, and the ledger assigns log positions per
writer, so exactly one process of a gateway writes: the *store owner*. It holds the
``ClickHouseSpanExporter`` (store + spool) and its ``write_records`` is the final write.

* ``LocalSink``: the owner's side (and the whole story with one worker): write to the
  store, else the spool; ``Unavailable`` when neither can take the batch.
* ``OwnerServer`` / ``RemoteSink``: with several workers, each worker process sends its
  finished records over an authenticated Unix socket to the owner and waits for the
  answer, so a request is acknowledged only once its records are stored or spooled.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Protocol

from genai_audit.clickhouse.errors import StoreError, StoreUnavailable
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.exporter.spool import SpoolFull, SpoolWriteFailed
from genai_audit.processor.record import AuditRecord
from genai_audit.processor.retention import RetentionPolicy
from genai_audit.safelog import log_failure

_log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
_READY_FILL = 0.9  # not ready once the spool is this full
_GROUP_MAX_RECORDS = 5000  # one group commit writes at most this many records
_EXPORTER_COUNTS = {"exported": "stored_records", "spooled": "spooled_records",
                    "drained": "drained_records", "duplicates": "duplicate_records",
                    "maintenance_runs": "maintenance_runs",
                    "maintenance_failures": "maintenance_failures",
                    "checkpoint_failures": "checkpoint_failures"}


class Unavailable(Exception):
    """The records could not be made durable now; the sender should retry later."""

    def __init__(self, reason: str, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class _Pending:
    records: list[AuditRecord]
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""
    error: Unavailable | None = None


class Sink(Protocol):
    def submit(self, records: Sequence[AuditRecord]) -> str: ...

    def ready(self) -> bool: ...

    def policies(self) -> dict[str, RetentionPolicy]:
        """The store's retention policy table (the pipeline's policy source reads it);
        raises ``StoreError`` when it cannot be read now."""
        ...


class LocalSink:
    """The store owner's sink: ``ClickHouseSpanExporter.write_records``, metered."""

    def __init__(self, exporter: ClickHouseSpanExporter, metrics: Metrics) -> None:
        self.exporter = exporter
        self.metrics = metrics
        self._seen: dict[str, int] = {}
        self._seen_lock = threading.Lock()
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake = threading.Condition()
        self._closing = False
        self._committer = threading.Thread(target=self._commit_loop, daemon=True,
                                           name="genai-audit-commit")
        self._committer.start()

    def submit(self, records: Sequence[AuditRecord]) -> str:
        """Block until ``records`` are stored or spooled (group commit with concurrent callers).

        Batches submitted while a write is in progress are written together in the next
        one: one insert (one dedup check, one token) for many requests, each caller
        answered with the outcome of the write that carried its records.
        """
        if not records:
            return "stored"
        pending = _Pending(list(records))
        with self._wake:
            self._queue.append(pending)
            self._wake.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.outcome

    def _commit_loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closing:
                    self._wake.wait()
                if not self._queue:
                    return
                group: list[_Pending] = []
                size = 0
                while self._queue and (not group or size + len(self._queue[0].records)
                                       <= _GROUP_MAX_RECORDS):
                    item = self._queue.popleft()
                    group.append(item)
                    size += len(item.records)
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        records = [r for item in group for r in item.records]
        started = time.monotonic()
        outcome, error = "stored", None
        try:
            outcome = self.exporter.write_records(records)
            if outcome == "stored":
                self.exporter.spool.refused = False  # the store takes data again
        except SpoolWriteFailed as exc:
            self.metrics.reject("unavailable", len(records))
            _log.error("spool refused a batch of %d record(s): %s", len(records), exc)
            error = Unavailable("store unreachable and the spool disk refused the write")
        except SpoolFull:
            self.metrics.reject("unavailable", len(records))
            error = Unavailable("store unreachable and spool full")
        except StoreError as exc:
            # Not a connectivity problem retrying fixes (schema, permissions...): keep the
            # data with the sender (retryable answer) and alarm.
            self.metrics.reject("store_error", len(records))
            _log.error("store refused a batch of %d record(s): %s", len(records),
                       type(exc).__name__)
            error = Unavailable("store error")
        except Exception as exc:  # answer every waiter; never log record content
            _log.error("store owner failed on a batch: %s", type(exc).__name__)
            error = Unavailable(type(exc).__name__)
        self.metrics.observe("store_latency_seconds", time.monotonic() - started)
        self.update_gauges()
        for item in group:
            item.outcome, item.error = outcome, error
            item.done.set()

    def close(self) -> None:
        """Finish queued commits, then stop the committer and the drainer."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._committer.join(timeout=60)
        self.stop_drainer()

    def ready(self) -> bool:
        """Not ready while the spool refuses batches (full, or its disk refused a write:
        until a batch is appended, drained or stored again) or is 90% full."""
        spool = self.exporter.spool
        return not spool.refused and spool.stats().bytes < spool.max_bytes * _READY_FILL

    def policies(self) -> dict[str, RetentionPolicy]:
        return self.exporter.composition.policies.table()

    def update_gauges(self) -> None:
        stats = self.exporter.spool.stats()
        self.metrics.set_gauge("spool_batches", stats.batches)
        self.metrics.set_gauge("spool_records", stats.records)
        self.metrics.set_gauge("spool_bytes", stats.bytes)
        counts = self.exporter.counts()
        with self._seen_lock:  # the exporter's own counts -> shared metrics, by difference
            for stat, metric in _EXPORTER_COUNTS.items():
                now = counts.get(stat, 0)
                if now > self._seen.get(stat, 0):
                    self.metrics.inc(metric, now - self._seen.get(stat, 0))
                    self._seen[stat] = now

    # -- background drain: the spool empties when the store is back, traffic or not --------
    def start_drainer(self, interval_s: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.exporter.drain_spool()
                    self.update_gauges()
                except Exception as exc:  # keep draining; never log record content
                    log_failure(_log, "spool drain failed", exc)

        self._drainer = threading.Thread(target=loop, name="genai-audit-drain", daemon=True)
        self._drainer.start()

    def stop_drainer(self) -> None:
        self._stop.set()
        if self._drainer is not None:
            self._drainer.join(timeout=10)


class OwnerServer:
    """Serves a ``LocalSink`` to worker processes over an authenticated Unix socket."""

    def __init__(self, sink: LocalSink, address: str, authkey: bytes) -> None:
        self.sink = sink
        self.address = address
        self._listener = Listener(address, family="AF_UNIX", authkey=authkey)
        self._thread = threading.Thread(target=self._accept, name="genai-audit-owner",
                                        daemon=True)
        self._closing = False

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):
                if self._closing:
                    return
                _log.warning("a worker connection failed its handshake")
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    return
                conn.send(self._answer(message))

    def _answer(self, message: Any) -> tuple[Any, ...]:
        kind = message[0]
        if kind == "ready":
            return ("ok", self.sink.ready())
        if kind == "policies":
            try:
                return ("ok", {t: (p.days, p.content_days)
                               for t, p in self.sink.policies().items()})
            except StoreError as exc:
                return ("unavailable", exc.code, RETRY_AFTER_S)
        if kind == "submit":
            try:
                return ("ok", self.sink.submit(message[1]))
            except Unavailable as exc:
                return ("unavailable", exc.reason, exc.retry_after)
            except Exception as exc:  # answer the worker; type and frames stay here
                log_failure(_log, "store owner failed on a batch", exc)
                return ("unavailable", type(exc).__name__, RETRY_AFTER_S)
        return ("error", f"unknown message {kind!r}")


class RemoteSink:
    """A worker's sink: one connection to the owner per handler thread."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self._authkey = authkey
        self._local = threading.local()

    def submit(self, records: Sequence[AuditRecord]) -> str:
        answer = self._call(("submit", list(records)))
        if answer[0] == "unavailable":
            raise Unavailable(answer[1], answer[2])
        return str(answer[1])

    def ready(self) -> bool:
        try:
            return bool(self._call(("ready",))[1])
        except Unavailable:
            return False

    def policies(self) -> dict[str, RetentionPolicy]:
        """The owner's view of the store's policy table (the worker cannot open the store)."""
        try:
            answer = self._call(("policies",))
        except Unavailable as exc:
            raise StoreUnavailable(exc.reason) from None
        if answer[0] != "ok":
            raise StoreUnavailable(f"store owner: {answer[1]}")
        return {str(t): RetentionPolicy(int(d), int(c)) for t, (d, c) in answer[1].items()}

    def _call(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        for attempt in (1, 2):  # one reconnect: the owner may have restarted a socket
            conn: Connection | None = getattr(self._local, "conn", None)
            try:
                if conn is None:
                    conn = Client(self.address, family="AF_UNIX", authkey=self._authkey)
                    self._local.conn = conn
                conn.send(message)
                answer: tuple[Any, ...] = conn.recv()
                return answer
            except (OSError, EOFError) as exc:
                self._local.conn = None
                if attempt == 2:
                    raise Unavailable("store owner unreachable") from exc
        raise AssertionError("unreachable")
