"""One row per LLM call: spans of one call merged, two calls never."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.clock import ManualClock
from genai_audit.config import Settings
from genai_audit.instrumentation import audit_context
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.merge import CallMerger, merge_batch
from genai_audit.processor.normalize import normalize
from genai_audit.processor.pricing import PricingStage, load_price_table
from genai_audit.processor.record import Flag
from genai_audit.processor.span_processor import ComplianceSpanProcessor

V2 = {  # official openai-v2, span content mode
    "gen_ai.operation.name": "chat", "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
    "gen_ai.response.id": "chatcmpl-42", "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 5, "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
        {"type": "text", "content": "What is the refund policy for order 123?"}]}]),
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
        {"type": "text", "content": "Refunds within 30 days."}]}]),
}
TRACELOOP = {  # Traceloop openai: indexed keys, no messages JSON
    "gen_ai.system": "openai", "llm.request.type": "chat",
    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
    "gen_ai.response.id": "chatcmpl-42", "gen_ai.usage.prompt_tokens": 10,
    "gen_ai.usage.completion_tokens": 5, "llm.is_streaming": "False",
    "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "What is the refund policy?",
}


class Spans:
    """Real SDK spans from named instrumentation scopes, kept in end order."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def tracer(self, scope: str) -> trace.Tracer:
        return self.provider.get_tracer(scope)

    @property
    def ended(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


def _attrs(base, **over):
    return {k: v for k, v in {**base, **over}.items() if v is not None}


def _price(records):
    PricingStage(load_price_table()).process(records)
    return records


def test_double_instrumentation_nested_is_one_record():
    """Reported: openai-v2 next to Traceloop openai: 2 rows per call, cost doubled."""
    s = Spans()
    with audit_context(tenant_id="acme", user_id="alice"):
        with s.tracer("opentelemetry.instrumentation.openai_v2").start_as_current_span(
                "chat gpt-4o-mini", attributes=V2):
            with s.tracer("opentelemetry.instrumentation.openai.v1").start_as_current_span(
                    "openai.chat", attributes=TRACELOOP):
                pass
    records = [normalize(x) for x in s.ended]
    single = _price([normalize(s.ended[1])])[0].total_cost
    [r] = _price(merge_batch(records))
    assert Flag.MERGED_SPANS in r.flags
    assert r.producers == ("opentelemetry.instrumentation.openai.v1",
                           "opentelemetry.instrumentation.openai_v2")
    assert (r.prompt_tokens, r.response_tokens) == (10, 5) and r.total_cost == single > 0
    assert r.content.output_messages  # the richer content (openai-v2's) was kept
    assert r.is_streaming is False and r.finish_reasons == ("stop",)
    assert len(r.merged_span_ids) == 1


def test_same_response_id_in_two_traces_is_one_record():
    """Reported: the anthropic SDK's own tracing next to Traceloop: 2 rows in 2 traces."""
    s = Spans()
    a = s.tracer("anthropic").start_span("chat", attributes=_attrs(
        V2, **{"gen_ai.input.messages": None, "gen_ai.output.messages": None}))
    b = s.tracer("opentelemetry.instrumentation.anthropic").start_span(
        "anthropic.chat", context=trace.set_span_in_context(trace.INVALID_SPAN),
        attributes=_attrs(TRACELOOP, **{"tenant.id": "acme", "enduser.id": "alice"}))
    b.end()
    a.end()
    x, y = (normalize(v) for v in s.ended)
    assert x.trace_id != y.trace_id
    [r] = merge_batch([x, y])
    assert r.tenant_id == "acme" and r.user_id == "alice"  # filled from the other span
    assert Flag.UNATTRIBUTED not in r.flags and Flag.NO_USER not in r.flags
    assert r.content.input_messages  # Traceloop's indexed prompt: the only content


def test_two_calls_without_response_id_never_merge():
    s = Spans()
    tracer = s.tracer("opentelemetry.instrumentation.openai.v1")
    no_id = _attrs(TRACELOOP, **{"gen_ai.response.id": None})
    with tracer.start_as_current_span("parent-less a", attributes=no_id):
        with tracer.start_as_current_span("concurrent b", context=trace.set_span_in_context(
                trace.INVALID_SPAN), attributes=no_id):
            pass
    assert len(merge_batch([normalize(x) for x in s.ended])) == 2


def test_an_agent_span_over_two_calls_is_not_merged_into_either():
    s = Spans()
    tracer = s.tracer("agents")
    with tracer.start_as_current_span("agent", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}):
        for _ in range(2):
            with tracer.start_as_current_span("call", attributes=_attrs(
                    TRACELOOP, **{"gen_ai.response.id": None})):
                pass
    assert len(merge_batch([normalize(x) for x in s.ended])) == 3


def test_a_server_reusing_response_ids_back_to_back_is_two_calls():
    s = Spans()
    tracer = s.tracer("opentelemetry.instrumentation.openai_v2")
    for _ in range(2):
        with tracer.start_as_current_span("chat", attributes=V2):
            pass
    assert len(merge_batch([normalize(x) for x in s.ended])) == 2



def test_late_partner_in_a_later_batch_is_not_a_second_cost_row():
    s = Spans()
    a = s.tracer("anthropic").start_span("chat", attributes=V2)
    b = s.tracer("opentelemetry.instrumentation.anthropic").start_span(
        "anthropic.chat", context=trace.set_span_in_context(trace.INVALID_SPAN),
        attributes=TRACELOOP)
    b.end()
    a.end()
    clock = ManualClock()
    merger = CallMerger(window_s=60, clock=clock)
    first, late = (normalize(x) for x in s.ended)
    assert merger.merge([first]) == [first]
    assert merger.merge([late]) == []
    assert merger.stats["late_duplicates"] == 1
    # after the window, the memory is gone (bounded in time)
    clock.advance(timedelta(seconds=61))
    late2 = normalize(s.ended[1])
    assert merger.merge([late2]) == [late2]


def test_late_parent_after_its_only_child_went_out():
    s = Spans()
    with s.tracer("v2").start_as_current_span("outer", attributes=_attrs(
            V2, **{"gen_ai.response.id": None})):
        with s.tracer("traceloop").start_as_current_span("inner", attributes=_attrs(
                TRACELOOP, **{"gen_ai.response.id": None})):
            pass
    inner, outer = (normalize(x) for x in s.ended)
    merger = CallMerger()
    assert merger.merge([inner]) == [inner]
    assert merger.merge([outer]) == []


def test_the_memory_is_bounded():
    merger = CallMerger(capacity=3)
    s = Spans()
    for i in range(10):
        with s.tracer("t").start_as_current_span("c", attributes=_attrs(
                V2, **{"gen_ai.response.id": f"r{i}"})):
            pass
    merger.merge([normalize(x) for x in s.ended])
    assert len(merger._responses) == 3 and len(merger._spans) == 3


class _Builder(SpanExporter):
    """An exporter with build/write: records what each batch's build received."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def build(self, spans: Sequence[ReadableSpan]):
        self.batches.append([x.name for x in spans])
        return list(spans)

    def write(self, records) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_inner_span_waits_for_its_open_genai_parent_to_share_its_batch():
    exporter = _Builder()
    processor = ComplianceSpanProcessor(exporter, Settings.load({"max_batch_size": 1},
                                                                env={}))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer", attributes=V2):
        with tracer.start_as_current_span("inner", attributes=TRACELOOP):
            pass
        with tracer.start_as_current_span("db.query"):
            pass
    with tracer.start_as_current_span("alone", attributes=V2):
        pass
    assert processor.force_flush(5000)
    processor.shutdown()
    assert ["inner", "outer"] in exporter.batches and ["alone"] in exporter.batches


def test_flush_releases_an_inner_span_whose_parent_is_still_open():
    exporter = _Builder()
    processor = ComplianceSpanProcessor(exporter, Settings.load(env={}))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer", attributes=V2):
        with tracer.start_as_current_span("inner", attributes=TRACELOOP):
            pass
        assert processor.force_flush(5000)
        assert [n for b in exporter.batches for n in b] == ["inner"]
    processor.shutdown()


def test_default_pipeline_merges(keystore):
    s = Spans()
    with audit_context(tenant_id="acme", user_id="alice"):
        with s.tracer("opentelemetry.instrumentation.openai_v2").start_as_current_span(
                "chat", attributes=V2):
            with s.tracer("opentelemetry.instrumentation.openai.v1").start_as_current_span(
                    "openai.chat", attributes=TRACELOOP):
                pass
    [r] = default_pipeline(Settings.load(env={}), keystore).build(s.ended)
    assert r.total_cost == Decimal("0.000004500") and Flag.MERGED_SPANS in r.flags


def test_usage_is_the_smallest_reported_count_not_a_sum():
    """Traceloop anthropic adds message_start's output count to the stream's final one (8 for
    7); the anthropic SDK's own span says 7. Counted once: 7, never 15."""
    s = Spans()
    a = s.tracer("com.anthropic.sdk.python").start_span("anthropic.messages.create",
                                                        attributes=V2)
    b = s.tracer("opentelemetry.instrumentation.anthropic").start_span(
        "anthropic.chat", context=trace.set_span_in_context(trace.INVALID_SPAN),
        attributes=_attrs(V2, **{"gen_ai.usage.output_tokens": 6,
                                 "gen_ai.usage.cache_creation.input_tokens": 15}))
    b.end()
    a.end()
    [r] = merge_batch([normalize(x) for x in s.ended])
    assert (r.prompt_tokens, r.response_tokens, r.cache_write_tokens) == (10, 5, 15)


def test_system_instructions_as_parts_are_one_system_message(make_span):
    r = normalize(make_span(**{"gen_ai.system_instructions": json.dumps(
        [{"type": "text", "content": "Be terse."}])}))
    assert r.content.system_instructions == [
        {"role": "system", "parts": [{"type": "text", "content": "Be terse."}]}]


def _processor_with(max_batch_size=1, **settings):
    exporter = _Builder()
    processor = ComplianceSpanProcessor(exporter, Settings.load(
        {"max_batch_size": max_batch_size, **settings}, env={}))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return exporter, processor, provider.get_tracer("t")


def test_outer_span_ending_first_waits_for_its_inner_span():
    """A stream: Traceloop's outer span ends before openai-v2's inner one, which holds the
    usage and the output; apart in two batches, the merge would keep the poorer span."""
    exporter, processor, tracer = _processor_with()
    outer = tracer.start_span("outer", attributes=TRACELOOP)
    inner = tracer.start_span("inner", context=trace.set_span_in_context(outer),
                              attributes=V2)
    outer.end()
    with tracer.start_as_current_span("other call", attributes=V2):
        pass
    inner.end()
    assert processor.force_flush(5000)
    processor.shutdown()
    assert ["other call"] in exporter.batches and ["outer", "inner"] in exporter.batches


def test_an_agent_span_and_its_calls_go_together_and_stay_three_records(keystore):
    exporter, processor, tracer = _processor_with()
    with tracer.start_as_current_span("agent", attributes={
            "gen_ai.operation.name": "invoke_agent"}):
        for name in ("call 1", "call 2"):
            with tracer.start_as_current_span(name, attributes=_attrs(
                    TRACELOOP, **{"gen_ai.response.id": name})):
                pass
    assert processor.force_flush(5000)
    processor.shutdown()
    assert exporter.batches == [["call 1", "call 2", "agent"]]


def test_waiting_spans_are_bounded():
    from genai_audit.processor.call_groups import CallGroups

    groups = CallGroups(max_held=2)
    s = Spans()
    tracer = s.tracer("t")
    outer = tracer.start_span("outer", attributes=V2)
    groups.started(outer.context.span_id, 0)
    handed = []
    for i in range(4):
        inner = tracer.start_span(f"inner {i}", context=trace.set_span_in_context(outer))
        groups.started(inner.context.span_id, outer.context.span_id)
        inner.end()
        handed.append(groups.ended(s.ended[-1]))
    assert handed[:2] == [None, None] and [[x.name for x in h] for h in handed[2:]] == [
        ["inner 2"], ["inner 3"]]  # past the bound: handed on at once
    outer.end()
    assert [x.name for x in groups.ended(s.ended[-1])] == ["inner 0", "inner 1", "outer"]
    assert groups.release() == []


def test_inner_span_outliving_its_outer_span_is_the_same_call():
    """openai-v2 + Traceloop on a stream: Traceloop ends its span when create() returns the
    (wrapped) stream, openai-v2's inner span ends with the stream, much later."""
    s = Spans()
    outer = s.tracer("opentelemetry.instrumentation.openai.v1").start_span(
        "openai.chat", attributes=_attrs(TRACELOOP, **{"gen_ai.response.id": None,
                                                       "llm.is_streaming": True}))
    inner = s.tracer("opentelemetry.util.genai.handler").start_span(
        "chat", context=trace.set_span_in_context(outer), attributes=V2)
    outer.end()
    inner.end(end_time=inner.start_time + 2_000_000_000)
    [r] = merge_batch([normalize(x) for x in s.ended])
    assert r.is_streaming and r.request_id == "chatcmpl-42" and r.latency_ms >= 2000


def test_an_agent_span_of_the_same_model_keeps_its_calls_through_the_merger():
    s = Spans()
    tracer = s.tracer("agents")
    with tracer.start_as_current_span("agent", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}):
        for _ in range(2):
            with tracer.start_as_current_span("call", attributes=_attrs(
                    TRACELOOP, **{"gen_ai.response.id": None})):
                pass
    records = [normalize(x) for x in s.ended]
    assert len(CallMerger().merge([records[2], records[0], records[1]])) == 3
