"""``ComplianceSpanProcessor``: the only genai-audit code on the request thread.

* ``on_start`` stamps the compliance baggage (tenant, user, tool...) onto the span;
* ``on_end`` drops non-GenAI spans and enqueues the rest (a deque append); GenAI spans
  nested in one another (two instrumentations wrapping one call) are queued together once
  all of them have ended (``call_groups.py``), so the spans of one call reach the merge
  (``merge.py``) in one batch;
* a worker thread takes a batch from the queue when one is full, when a flush or a
  synchronous write waits, or ``schedule_delay_ms`` after the previous batch, and builds
  its records (the record pipeline, ``exporter.build``); a writer thread writes them
  (``exporter.write``). The two overlap: while batch N is inserted (the embedded engine
  releases the GIL), batch N+1 is built, so throughput is bound by the slower stage, not
  their sum. A plain SDK exporter (no ``build``/``write``) is driven the same way, its
  whole ``export`` on the writer.

Durability per tool: spans of a tool named in ``sync_tools`` are written before ``on_end``
returns, that is before the instrumented LLM call returns to the application, bounded by
``sync_timeout_ms``. If that write fails or times out, ``sync_on_failure`` decides:
``raise`` reports the failure to the caller's ``audit_context``, which raises
``AuditDurabilityError`` when its block ends (``on_end`` itself never raises: that would
skip every span processor after this one); outside an ``audit_context`` and with
``continue``, an ERROR alarm is logged and the call goes on.
"""

from __future__ import annotations

import atexit
import collections
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from genai_audit.config import Settings
from genai_audit.instrumentation.context import stamp_baggage
from genai_audit.instrumentation.durability import (  # noqa: F401 - AuditDurabilityError:
    AuditDurabilityError,  # re-exported, its historical import path
    report_durability_failure,
)
from genai_audit.instrumentation.keys import ATTR_TOOL
from genai_audit.processor.call_groups import CallGroups
from genai_audit.processor.normalize import is_genai_span
from genai_audit.safelog import log_failure

_log = logging.getLogger(__name__)

DROP_REPORT_INTERVAL_S = 10.0


@dataclass
class _Pending:
    span: ReadableSpan
    done: threading.Event | None = None
    ok: bool = False
    inner: list[ReadableSpan] | None = None  # the other GenAI spans of its call

    def spans(self) -> list[ReadableSpan]:
        return [self.span] if self.inner is None else [*self.inner, self.span]


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Built:
    """One batch between the two threads: its spans' records, and the flushes behind it."""

    batch: list[_Pending]
    records: Any  # what ``build`` returned (None: the batch failed to build)
    flushes: list[_Flush]


Build = Callable[[Sequence[ReadableSpan]], Any]
Write = Callable[[Any], SpanExportResult]


def _stages(exporter: SpanExporter) -> tuple[Build, Write]:
    """``exporter.build``/``exporter.write`` when it has them; else identity and ``export``."""
    build, write = getattr(exporter, "build", None), getattr(exporter, "write", None)
    if callable(build) and callable(write):
        return build, write
    return list, exporter.export


class ComplianceSpanProcessor(SpanProcessor):
    def __init__(self, exporter: SpanExporter, settings: Settings | None = None) -> None:
        self.exporter = exporter
        self.settings = settings or Settings.load()
        self._queue: collections.deque[_Pending | _Flush] = collections.deque()
        self._wake = threading.Condition(threading.Lock())
        self._stopping = False
        self._urgent = 0  # flushes and synchronous writes queued: send up to them now
        self._shutdown_done = False
        self._shutdown_lock = threading.Lock()
        self.dropped = 0  # spans whose record was dropped on a full queue
        self._drop_reported = 0  # ...of which already reported in the log
        self._drop_reported_at = -DROP_REPORT_INTERVAL_S
        self._build, self._write = _stages(exporter)
        self._groups = CallGroups(max_held=self.settings.max_queue_size)
        self._built: queue.Queue[_Built | None] = queue.Queue(maxsize=1)  # one in hand-off
        self._worker = threading.Thread(target=self._run, name="genai-audit-worker",
                                        daemon=True)
        self._writer = threading.Thread(target=self._run_writer, name="genai-audit-writer",
                                        daemon=True)
        warm_up = getattr(exporter, "warm_up", None)
        if callable(warm_up):
            warm_up()
        atexit.register(self.shutdown)  # after warm-up: see ClickHouseSpanExporter.warm_up
        threading._register_atexit(self._flush_at_exit)  # type: ignore[attr-defined]
        self._writer.start()
        self._worker.start()

    # -- request thread ----------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        stamp_baggage(span, parent_context)
        if is_genai_span(span):
            parent = span.parent
            self._groups.started(span.context.span_id, parent.span_id if parent else 0)

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopping or not is_genai_span(span):
            return
        group = self._groups.ended(span)
        if group is None:  # waits for the other spans of its call (call_groups.py)
            return
        attrs = span.attributes or {}
        inner = group[:-1] or None
        if attrs.get(ATTR_TOOL) in self.settings.sync_tools:
            self._write_now(span, inner)
            return
        if len(self._queue) >= self.settings.max_queue_size:
            self._dropped_one()
            return
        self._queue.append(_Pending(span, inner=inner))
        if self._full():
            self._notify()

    def _release_groups(self) -> None:
        """A flush writes everything that ended before it: the spans waiting for the rest
        of their call too (a partner ending later is then merged by the merge stage's
        memory)."""
        for spans in self._groups.release():
            self._queue.append(_Pending(spans[-1], inner=spans[:-1] or None))

    def _dropped_one(self) -> None:
        """Count a drop; report at most one ERROR per interval (a saturated queue drops
        on every call: one line per span would flood the application's log)."""
        self.dropped += 1
        now = time.monotonic()
        if now - self._drop_reported_at < DROP_REPORT_INTERVAL_S:
            return
        self._drop_reported_at = now
        since, self._drop_reported = self.dropped - self._drop_reported, self.dropped
        _log.error("genai-audit queue full (%d spans): %d audit record(s) NOT recorded since "
                   "the last report, %d in all; the pipeline cannot keep up with this "
                   "process's calls (raise max_queue_size, or run the gateway)",
                   self.settings.max_queue_size, since, self.dropped)

    def _write_now(self, span: ReadableSpan, inner: list[ReadableSpan] | None = None) -> None:
        pending = _Pending(span, done=threading.Event(), inner=inner)
        self._enqueue_urgent(pending)
        finished = pending.done.wait(self.settings.sync_timeout_ms / 1000)  # type: ignore[union-attr]
        if finished and pending.ok:
            return
        reason = "failed" if finished else f"timed out after {self.settings.sync_timeout_ms} ms"
        tool = (span.attributes or {}).get(ATTR_TOOL)
        message = f"genai-audit: synchronous audit write {reason} for tool {tool}"
        if self.settings.sync_on_failure == "raise" and report_durability_failure(message):
            _log.error("ALARM %s; AuditDurabilityError raised to the caller's audit_context",
                       message)
            return
        _log.error("ALARM %s; the call continues without a stored audit record", message)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify()

    def _enqueue_urgent(self, item: _Pending | _Flush) -> None:
        """Queue an item someone waits for (a flush, a synchronous write): the worker
        sends the queue up to it now, not at the next full batch or schedule delay."""
        with self._wake:
            self._urgent += 1
            self._queue.append(item)
            self._wake.notify()

    # -- worker (builds) and writer ---------------------------------------------------
    def _run(self) -> None:
        """Build one batch when a batch is full, when a flush or a synchronous write waits,
        or ``schedule_delay_ms`` after the previous batch; never merely because the queue
        is not empty, or a steady trickle of spans goes out as one tiny insert after
        another (each a part for the store to write and merge: at 285 calls/s that was 9
        rows per insert and most of a core)."""
        delay = self.settings.schedule_delay_ms / 1000
        try:
            while True:
                due = time.monotonic() + delay
                with self._wake:
                    while not (self._stopping or self._urgent or self._full()):
                        left = due - time.monotonic()
                        if left <= 0:
                            break
                        self._wake.wait(left)
                if self._queue:
                    self._send_batch()
                if self._stopping and not self._queue:
                    return
        finally:
            self._built.put(None)  # the writer finishes what it holds, then stops

    def _full(self) -> bool:
        return len(self._queue) >= self.settings.max_batch_size

    def _send_batch(self) -> None:
        """Take up to ``max_batch_size`` spans (or up to a flush marker), build their
        records and hand them to the writer (waits while the writer holds one already)."""
        batch: list[_Pending] = []
        flushes: list[_Flush] = []
        urgent = 0
        while self._queue and len(batch) < self.settings.max_batch_size:
            item = self._queue.popleft()
            if isinstance(item, _Flush):
                flushes.append(item)
                urgent += 1
                break  # everything before the marker is in this batch
            urgent += item.done is not None
            batch.append(item)
        if urgent:
            with self._wake:
                self._urgent -= urgent
        records = self._build_batch(batch) if batch else None
        self._built.put(_Built(batch, records, flushes))

    def _build_batch(self, batch: list[_Pending]) -> Any:
        try:
            return self._build([s for p in batch for s in p.spans()])
        except Exception as exc:  # an exporter must not raise; if one does, fail the batch
            log_failure(_log, "genai-audit exporter raised while building records", exc)
            return None

    def _run_writer(self) -> None:
        while (item := self._built.get()) is not None:
            if item.batch:
                self._write_batch(item.batch, item.records)
            for flush in item.flushes:  # everything before the marker is written
                flush.done.set()

    def _write_batch(self, batch: list[_Pending], records: Any) -> None:
        ok = False
        if records is not None:
            try:
                ok = self._write(records) is SpanExportResult.SUCCESS
            except Exception as exc:  # an exporter must not raise; if one does, fail the batch
                log_failure(_log, "genai-audit exporter raised while writing records", exc)
        for pending in batch:
            pending.ok = ok
            if pending.done is not None:
                pending.done.set()

    # -- lifecycle -------------------------------------------------------------------
    def _flush_at_exit(self) -> None:
        """Drain the queue while the interpreter is still whole (threading's exit hook runs
        before ``atexit``): native libraries the pipeline uses (the redaction model) can
        stall once interpreter finalization has begun."""
        self.force_flush(self.settings.export_timeout_ms)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self._shutdown_done:
            return True
        self._release_groups()
        marker = _Flush()
        self._enqueue_urgent(marker)
        return marker.done.wait(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        with self._shutdown_lock:
            if self._shutdown_done:
                return
            self._shutdown_done = True
        deadline = time.monotonic() + timeout_millis / 1000
        self._release_groups()
        self._stopping = True
        self._notify()
        self._worker.join(max(0.0, deadline - time.monotonic()))
        self._writer.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive() or self._writer.is_alive():
            _log.error("genai-audit: %d span(s) still queued at shutdown deadline",
                       len(self._queue))
        remaining_ms = max(0.0, deadline - time.monotonic()) * 1000
        if "timeout_millis" in inspect.signature(self.exporter.shutdown).parameters:
            self.exporter.shutdown(timeout_millis=remaining_ms)  # type: ignore[call-arg]
        else:  # a plain SDK exporter: its shutdown takes no deadline
            self.exporter.shutdown()
