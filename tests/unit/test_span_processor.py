from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.config import Settings
from genai_audit.instrumentation import audit_context
from genai_audit.processor.span_processor import AuditDurabilityError, ComplianceSpanProcessor

GENAI = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}


class CollectingExporter(SpanExporter):
    """An in-memory exporter with a switchable result and an optional gate."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.result = SpanExportResult.SUCCESS
        self.gate = threading.Event()
        self.gate.set()
        self.shutdowns = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(5)
        if self.result is SpanExportResult.SUCCESS:
            self.spans.extend(spans)
        return self.result

    def shutdown(self) -> None:
        self.shutdowns += 1


def _setup(exporter: CollectingExporter | None = None, **settings):
    exporter = exporter or CollectingExporter()
    processor = ComplianceSpanProcessor(exporter, Settings.load(settings, env={}))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return exporter, processor, provider.get_tracer("t")


def test_baggage_is_stamped_and_non_genai_spans_are_dropped():
    exporter, processor, tracer = _setup()
    with audit_context(tenant_id="acme", user_id="u1", tool_name="hr_helpdesk"):
        with tracer.start_as_current_span("openai.chat", attributes=GENAI):
            pass
        with tracer.start_as_current_span("db.query"):
            pass
    assert processor.force_flush(5000)
    [span] = exporter.spans
    assert span.attributes["tenant.id"] == "acme" and span.attributes["enduser.id"] == "u1"
    assert span.attributes["genai_audit.tool"] == "hr_helpdesk"
    processor.shutdown()


def test_explicit_span_attributes_win_over_baggage():
    exporter, processor, tracer = _setup()
    with audit_context(tenant_id="acme"):
        with tracer.start_as_current_span("c", attributes={**GENAI, "tenant.id": "own"}):
            pass
    processor.force_flush(5000)
    assert exporter.spans[0].attributes["tenant.id"] == "own"
    processor.shutdown()


def test_async_mode_does_not_wait_for_the_store():
    exporter, processor, tracer = _setup()
    exporter.gate.clear()  # the store is slow
    with tracer.start_as_current_span("c", attributes=GENAI):
        pass  # returns although the export is blocked
    assert exporter.spans == []
    exporter.gate.set()
    assert processor.force_flush(5000) and len(exporter.spans) == 1
    processor.shutdown()


def test_sync_tool_is_stored_before_the_call_returns():
    exporter, processor, tracer = _setup(sync_tools="contract_review", schedule_delay_ms=60_000)
    with audit_context(tenant_id="acme", tool_name="contract_review"):
        with tracer.start_as_current_span("c", attributes=GENAI):
            pass
    assert len(exporter.spans) == 1  # no flush needed: on_end waited for the write
    processor.shutdown()


def test_sync_failure_raises_from_the_callers_block_never_into_the_sdk():
    """Issue 17: on_end raised AuditDurabilityError into the SDK, which then skipped every
    processor after it (OTEL_TRACES_EXPORTER=genai_audit,otlp lost the span). Now on_end
    returns, the next processor gets the span, and the audit_context block raises."""
    exporter = CollectingExporter()
    exporter.result = SpanExportResult.FAILURE
    processor = ComplianceSpanProcessor(exporter, Settings.load(
        {"sync_tools": "contract_review", "sync_timeout_ms": 200}, env={}))
    after = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(after))  # e.g. the otlp exporter
    tracer = provider.get_tracer("t")
    with pytest.raises(AuditDurabilityError, match="failed for tool contract_review"):
        with audit_context(tenant_id="acme", tool_name="contract_review"):
            span = tracer.start_span("c", attributes=GENAI)
            span.end()  # does not raise
            ended = True
    assert ended and [s.name for s in after.get_finished_spans()] == ["c"]
    processor.shutdown()


def test_sync_failure_outside_an_audit_context_is_the_alarm(caplog):
    exporter, processor, tracer = _setup(sync_tools="contract_review", sync_timeout_ms=200)
    exporter.result = SpanExportResult.FAILURE
    with caplog.at_level(logging.ERROR):
        with tracer.start_as_current_span("c", attributes={**GENAI,
                                                           "genai_audit.tool": "contract_review"}):
            pass
    assert "ALARM" in caplog.text and "without a stored audit record" in caplog.text
    processor.shutdown()


def test_sync_timeout_with_continue_policy_logs_an_alarm(caplog):
    exporter, processor, tracer = _setup(sync_tools="hr", sync_timeout_ms=100,
                                         sync_on_failure="continue")
    exporter.gate.clear()
    with caplog.at_level(logging.ERROR), audit_context(tenant_id="acme", tool_name="hr"):
        with tracer.start_as_current_span("c", attributes=GENAI):
            pass
    assert "ALARM" in caplog.text and "timed out after 100 ms" in caplog.text
    exporter.gate.set()
    processor.shutdown()
    assert len(exporter.spans) == 1  # written late, not lost


def test_full_queue_counts_and_logs_drops(caplog):
    exporter, processor, tracer = _setup(max_queue_size=2, max_batch_size=100,
                                         schedule_delay_ms=60_000)
    exporter.gate.clear()
    with caplog.at_level(logging.ERROR):
        for _ in range(40):
            with tracer.start_as_current_span("c", attributes=GENAI):
                pass
    assert processor.dropped >= 30
    [report] = [r.getMessage() for r in caplog.records if "NOT recorded" in r.getMessage()]
    assert "1 audit record(s) NOT recorded since the last report, 1 in all" in report  # once
    exporter.gate.set()
    processor.shutdown()


def test_shutdown_flushes_is_idempotent_and_bounded():
    exporter, processor, tracer = _setup(schedule_delay_ms=60_000)
    for _ in range(3):
        with tracer.start_as_current_span("c", attributes=GENAI):
            pass
    processor.shutdown()
    processor.shutdown()
    assert len(exporter.spans) == 3 and exporter.shutdowns == 1
    assert processor.force_flush(10)


class StagedExporter(CollectingExporter):
    """Has ``build``/``write`` like ClickHouseSpanExporter; records what overlapped."""

    def __init__(self) -> None:
        super().__init__()
        self.built: list[int] = []
        self.writing = threading.Event()
        self.built_while_writing = 0
        self.order: list[str] = []

    def build(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        if self.writing.is_set():
            self.built_while_writing += 1
        self.built.append(len(spans))
        return [s for s in spans if s.name != "unbuildable"]

    def write(self, records: Sequence[ReadableSpan]) -> SpanExportResult:
        self.writing.set()
        self.gate.wait(5)
        self.order.extend(s.name for s in records)
        self.writing.clear()
        return self.export(records)


def test_the_next_batch_is_built_while_the_previous_one_is_written():
    exporter = StagedExporter()
    processor = ComplianceSpanProcessor(exporter, Settings.load({"max_batch_size": 2},
                                                                env={}))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    exporter.gate.clear()  # the first write holds until the second batch has been built
    for i in range(2):
        with tracer.start_as_current_span(f"call-{i}", attributes=GENAI):
            pass
    assert exporter.writing.wait(5)  # batch 1 is being written...
    for i in range(2, 4):
        with tracer.start_as_current_span(f"call-{i}", attributes=GENAI):
            pass
    waited = threading.Event()
    for _ in range(100):  # ...and batch 2 gets built meanwhile
        if exporter.built_while_writing:
            break
        waited.wait(0.05)
    assert exporter.built_while_writing == 1 and exporter.built == [2, 2]
    exporter.gate.set()
    assert processor.force_flush(5000)
    assert exporter.order == [f"call-{i}" for i in range(4)]  # written in order
    processor.shutdown()


def test_a_sync_tool_waits_for_the_writer_not_just_the_build():
    exporter = StagedExporter()
    processor = ComplianceSpanProcessor(exporter, Settings.load(
        {"sync_tools": "contract_review", "sync_timeout_ms": 200, "sync_on_failure": "raise"},
        env={}))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    exporter.gate.clear()  # built at once, but the write cannot finish
    with pytest.raises(AuditDurabilityError, match="timed out"):
        with audit_context(tenant_id="acme", tool_name="contract_review"):
            with tracer.start_as_current_span("openai.chat", attributes=GENAI):
                pass
    assert exporter.built == [1] and not exporter.spans
    exporter.gate.set()
    processor.shutdown()


class _RaisingStages(CollectingExporter):
    """An exporter with build/write stages that break the SDK contract by raising."""

    def __init__(self, fail_in: str) -> None:
        super().__init__()
        self.fail_in = fail_in

    def build(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        if self.fail_in == "build":
            raise ValueError("could not parse 'my SSN is 078-05-1120'")
        return list(spans)

    def write(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.fail_in == "write":
            raise ValueError("Code: 27. Cannot parse input: 'my SSN is 078-05-1120'")
        return self.export(spans)


@pytest.mark.parametrize("fail_in", ["build", "write"])
def test_an_exporter_that_raises_fails_its_batch_without_logging_the_text(fail_in, caplog):
    caplog.set_level(logging.DEBUG)
    exporter = _RaisingStages(fail_in)
    processor = ComplianceSpanProcessor(exporter, Settings.load({}, env={}))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("openai.chat", attributes=GENAI):
        pass
    assert processor.force_flush(5000)
    processor.shutdown()
    assert exporter.spans == []  # the batch failed
    assert f"raised while {fail_in.rstrip('e')}ing records: ValueError" in caplog.text
    assert "078-05-1120" not in caplog.text


class BatchRecordingExporter(CollectingExporter):
    """Records each batch's size; its first export is slow (the store is busy)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.first_started = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.first_started.set()
        self.batches.append(len(spans))
        return super().export(spans)


def test_spans_ended_while_the_worker_waits_on_the_writer_wait_for_their_batch():
    """A steady trickle must not go out as one tiny insert after another: spans that end
    while the worker waits to hand a batch to the busy writer wait for the next full
    batch, a flush or the schedule delay (before the fix they went out at once)."""
    exporter, processor, tracer = _setup(BatchRecordingExporter(), max_batch_size=4,
                                         schedule_delay_ms=60_000)
    exporter.gate.clear()  # the store is slow: the first write blocks

    def full_batch() -> None:
        for _ in range(4):
            tracer.start_span("c", attributes=GENAI).end()

    full_batch()  # batch 1: the writer takes it and blocks
    assert exporter.first_started.wait(5)
    full_batch()  # batch 2: waits in the hand-off slot
    assert _eventually(lambda: not processor._queue)
    full_batch()  # batch 3: the worker blocks handing it over
    assert _eventually(lambda: not processor._queue)
    tracer.start_span("c", attributes=GENAI).end()  # ends while the worker is blocked
    exporter.gate.set()
    assert _eventually(lambda: exporter.batches == [4, 4, 4]), exporter.batches
    threading.Event().wait(0.5)  # ample time for a premature fourth batch
    assert exporter.batches == [4, 4, 4] and len(processor._queue) == 1
    assert processor.force_flush(5000) and exporter.batches == [4, 4, 4, 1]
    processor.shutdown()


def test_the_schedule_delay_sends_a_partial_batch():
    exporter, processor, tracer = _setup(BatchRecordingExporter(), max_batch_size=100,
                                         schedule_delay_ms=50)
    for _ in range(3):
        tracer.start_span("c", attributes=GENAI).end()
    assert _eventually(lambda: sum(exporter.batches) == 3)
    processor.shutdown()


def _eventually(check, seconds: float = 5.0) -> bool:
    waited = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if check():
            return True
        waited.wait(0.01)
    return check()
