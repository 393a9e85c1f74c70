"""GenAI log events -> the record's messages (``processor/events.py``), the in-process door
(``GenAIEventLogProcessor`` on a real SDK ``LoggerProvider``) and the bound (ManualClock)."""

from __future__ import annotations

import json

from opentelemetry import trace
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.clock import ManualClock
from genai_audit.processor.event_log_processor import GenAIEventLogProcessor
from genai_audit.processor.events import EventJoiner, GenAIEvent, event_messages
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.render import RenderStage

T, S = "0" * 31 + "1", "0" * 15 + "2"


def _event(name: str, body=None, attributes=None, at: int = 0) -> GenAIEvent:
    return GenAIEvent(name, T, S, body, attributes or {}, at)


def test_legacy_events_become_genai_messages_with_roles_tool_calls_and_reasons():
    call = {"id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": '{"who": "Ann"}'}}
    inputs, outputs, system, *details = event_messages([
        _event("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "done"}}, at=5),
        _event("gen_ai.system.message", {"content": "Be brief."}, at=1),
        _event("gen_ai.user.message", {"content": "find Ann"}, at=2),
        _event("gen_ai.assistant.message", {"tool_calls": [call]}, at=3),
        _event("gen_ai.tool.message", {"content": "Ann: room 4", "id": "call_1"}, at=4),
        _event("gen_ai.user.message", None, at=2),  # content capture off: nothing
    ])
    assert system == [{"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}]
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert inputs[1]["parts"] == [{"type": "tool_call", "id": "call_1", "name": "lookup",
                                   "arguments": '{"who": "Ann"}'}]
    assert inputs[2]["parts"] == [{"type": "tool_call_response", "id": "call_1",
                                   "response": "Ann: room 4"}]
    assert outputs == [{"role": "assistant", "finish_reason": "stop",
                        "parts": [{"type": "text", "content": "done"}]}]
    assert details == ["", "", ""]


def test_the_details_event_keeps_its_messages_json_structured_or_text():
    structured = ({"role": "user", "parts": ({"type": "text", "content": "hi"},)},)
    *_, input_json, output_json, _ = event_messages([_event(
        "gen_ai.client.inference.operation.details",
        attributes={"gen_ai.input.messages": structured,
                    "gen_ai.output.messages": '[{"role":"assistant","parts":[]}]'})])
    assert json.loads(input_json) == [{"role": "user",
                                       "parts": [{"type": "text", "content": "hi"}]}]
    assert output_json == '[{"role":"assistant","parts":[]}]'


def _traced(log_processor: GenAIEventLogProcessor, *, emit: bool):
    """One span of a real SDK tracer; inside it, a real SDK logger emits the call's events
    as openai-v2 does (no explicit ids: the SDK takes them from the current span)."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(log_processor)
    logger = logger_provider.get_logger("opentelemetry.instrumentation.openai_v2")
    with tracer_provider.get_tracer("t").start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o"}):
        if emit:
            logger.emit(LogRecord(event_name="gen_ai.user.message",
                                  body={"content": "hello"}))
            logger.emit(LogRecord(event_name="gen_ai.choice", body={
                "index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "hi there"}}))
        logger.emit(LogRecord(body="not an event"))
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "outside"}))
    assert trace.get_current_span() is trace.INVALID_SPAN
    return spans.get_finished_spans()


def test_in_process_events_are_joined_into_their_spans_record():
    joiner = EventJoiner()
    door = GenAIEventLogProcessor(joiner)
    spans = _traced(door, emit=True)
    assert joiner.held() == 2 and door.unjoinable == 1  # the one outside any span
    [record] = RecordPipeline([RenderStage(capture_content=True)], joiner=joiner).build(spans)
    assert '{"content":"hello","type":"text"}' in record.prompt_text
    assert json.loads(record.response_text) == [
        {"finish_reason": "stop", "parts": [{"content": "hi there", "type": "text"}],
         "role": "assistant"}]
    assert "content_not_captured" not in record.flags and joiner.held() == 0


def test_without_events_the_default_path_is_unchanged():
    joiner = EventJoiner()
    spans = _traced(GenAIEventLogProcessor(joiner), emit=False)
    [record] = RecordPipeline([RenderStage(capture_content=True)], joiner=joiner).build(spans)
    assert "content_not_captured" in record.flags and record.prompt_text == ""


def test_events_whose_span_never_comes_are_dropped_after_the_bound_not_before():
    clock = ManualClock()
    joiner = EventJoiner(hold_s=30.0, max_events=3, clock=clock)
    joiner.add("", [_event("gen_ai.user.message", {"content": "secret-prompt"})])
    clock.advance(30)
    assert joiner.expire() == [] and joiner.held() == 1
    clock.advance(0.5)
    [note] = joiner.expire()
    assert (note.trace_id, note.span_id, note.events, note.reason) == (T, S, 1, "expired")
    assert joiner.held() == 0 and "secret-prompt" not in repr(note)
    other = [GenAIEvent("gen_ai.user.message", T, f"{i:016x}", {"content": "y"}) for i in
             range(1, 5)]
    joiner.add("", other)  # one more than the capacity: the oldest goes at once
    assert joiner.held() == 3 and [n.reason for n in joiner.expire()] == ["capacity"]


def test_events_join_only_records_of_their_scope():
    joiner = EventJoiner()
    spans = _traced(GenAIEventLogProcessor(joiner), emit=False)
    ctx = spans[0].context
    joiner.add("globex", [GenAIEvent("gen_ai.user.message", f"{ctx.trace_id:032x}",
                                     f"{ctx.span_id:016x}", {"content": "injected"})])
    [record] = RecordPipeline([RenderStage(capture_content=True)], joiner=joiner).build(spans)
    assert "injected" not in record.prompt_text and joiner.held() == 1
