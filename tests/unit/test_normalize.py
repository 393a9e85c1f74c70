from __future__ import annotations

import json

from genai_audit.processor.normalize import MAX_FIELD_CHARS, is_genai_span, normalize, record_id
from genai_audit.processor.record import UNATTRIBUTED_TENANT, Flag


def test_current_conventions_are_read(make_span):
    r = normalize(make_span(**{"genai_audit.feature": "triage", "session.id": "s-1",
                               "genai_audit.region": "eu", "genai_audit.data_class": "phi"}))
    assert (r.tenant_id, r.user_id, r.tool_name, r.feature_name) == (
        "acme", "alice", "hr_helpdesk", "triage")
    assert (r.session_id, r.region, r.data_class, r.service_name) == ("s-1", "eu", "phi",
                                                                      "test-svc")
    assert (r.provider, r.model, r.response_model, r.request_id) == (
        "openai", "gpt-4o", "gpt-4o", "chatcmpl-1")
    assert (r.prompt_tokens, r.response_tokens, r.status_code) == (10, 20, 200)
    assert r.finish_reasons == ("stop",)
    assert r.content.input_messages[0]["parts"][0]["content"] == "hi"
    assert r.content.output_messages[0]["parts"][0]["content"] == "hello"
    assert r.flags == set()


def test_record_id_is_stable_for_a_span(make_span):
    span = make_span()
    ctx = span.get_span_context()
    assert normalize(span).id == normalize(span).id == record_id(ctx.trace_id, ctx.span_id)
    assert normalize(make_span()).id != normalize(span).id


def test_legacy_indexed_keys(make_span):
    r = normalize(make_span(**{
        "gen_ai.input.messages": None, "gen_ai.output.messages": None,
        "gen_ai.usage.input_tokens": None, "gen_ai.usage.output_tokens": None,
        "gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.completion_tokens": 3,
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "be brief",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "question",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "answer",
        "gen_ai.completion.0.finish_reason": "stop"}))
    assert [m["role"] for m in r.content.input_messages] == ["system", "user"]
    assert r.content.output_messages[0]["parts"][0]["content"] == "answer"
    assert (r.prompt_tokens, r.response_tokens) == (7, 3)
    assert Flag.MISSING_USAGE not in r.flags


def test_missing_tenant_lands_unattributed(make_span):
    r = normalize(make_span(**{"tenant.id": None, "enduser.id": None}))
    assert r.tenant_id == UNATTRIBUTED_TENANT
    assert {Flag.UNATTRIBUTED, Flag.NO_USER} <= r.flags


def test_malformed_json_is_kept_as_text_and_flagged_when_read(make_span):
    r = normalize(make_span(**{"gen_ai.input.messages": "{not json",
                               "gen_ai.output.messages": json.dumps({"role": 5})}))
    assert Flag.MALFORMED_INPUT_MESSAGES not in r.flags  # not parsed yet
    assert r.content.input_messages == [
        {"role": "user", "parts": [{"type": "text", "content": "{not json"}]}]
    assert Flag.MALFORMED_INPUT_MESSAGES in r.flags
    assert r.content.output_messages == [{"role": 5}]  # one object is accepted as a list
    assert Flag.MALFORMED_OUTPUT_MESSAGES not in r.flags
    r2 = normalize(make_span(**{"gen_ai.output.messages": "[1, 2]"}))
    assert r2.content.output_messages[0]["parts"][0]["content"] == "[1, 2]"
    assert Flag.MALFORMED_OUTPUT_MESSAGES in r2.flags


def test_content_is_parsed_once_and_its_repr_shows_no_text(make_span):
    r = normalize(make_span(**{"gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "my SSN is 123-45-6789"}]}])}))
    assert repr(r.content) == "Content(input=unparsed, output=unparsed, system=0)"
    first = r.content.input_messages
    assert r.content.input_messages is first  # parsed on first read, kept
    assert "123-45" not in repr(r.content)
    assert repr(r.content) == "Content(input=1, output=unparsed, system=0)"


def test_a_record_repr_shows_no_user_id_and_no_content(make_span):
    from genai_audit.processor.render import RenderStage

    r = normalize(make_span(**{"enduser.id": "alice@example.com", "gen_ai.input.messages":
                               json.dumps([{"role": "user", "parts": [
                                   {"type": "text", "content": "my SSN is 123-45-6789"}]}])}))
    RenderStage().process([r])
    assert "123-45" in r.prompt_text and r.user_id == "alice@example.com"
    assert "123-45" not in repr(r) and "alice" not in repr(r)


def test_content_dropped_unread_is_never_parsed(make_span):
    from genai_audit.processor.render import RenderStage

    r = normalize(make_span(**{"gen_ai.input.messages": "{not json"}))
    RenderStage(capture_content=False).process([r])
    assert r.content.is_empty() and Flag.MALFORMED_INPUT_MESSAGES not in r.flags


def test_whitespace_around_messages_json_is_valid_and_trailing_data_is_not(make_span):
    msg = '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'
    for raw in (f" \n{msg}\t ", f"{msg}\r\n"):
        r = normalize(make_span(**{"gen_ai.input.messages": raw}))
        assert r.content.input_messages == json.loads(msg)
        assert Flag.MALFORMED_INPUT_MESSAGES not in r.flags, raw
    for raw in (f"{msg} x", f"{msg}{msg}", f"{msg}\u00a0"):  # NBSP is not JSON whitespace
        r = normalize(make_span(**{"gen_ai.input.messages": raw}))
        assert r.content.input_messages[0]["parts"][0]["content"] == raw
        assert Flag.MALFORMED_INPUT_MESSAGES in r.flags, raw


def test_missing_usage_is_flagged_but_not_for_failed_calls(make_span):
    r = normalize(make_span(**{"gen_ai.usage.input_tokens": None}))
    assert Flag.MISSING_USAGE in r.flags and r.prompt_tokens == 0 and r.response_tokens == 20
    bad = normalize(make_span(**{"gen_ai.usage.input_tokens": "ten"}))
    assert Flag.MISSING_USAGE in bad.flags


def test_invalid_utf8_is_repaired_and_flagged(make_span):
    broken = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    r = normalize(make_span(**{"tenant.id": "acme\udcff", "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": broken}]}])}))
    assert Flag.INVALID_UTF8 in r.flags
    assert r.tenant_id == "acme\ufffd"
    r.content.input_messages[0]["parts"][0]["content"].encode("utf-8")  # encodable now


def test_huge_content_is_truncated_and_flagged(make_span):
    r = normalize(make_span(**{"gen_ai.output.messages": "x" * (MAX_FIELD_CHARS + 10)}))
    assert Flag.CONTENT_TRUNCATED in r.flags
    assert len(r.content.output_messages[0]["parts"][0]["content"]) == MAX_FIELD_CHARS


def test_error_status_is_parsed_from_the_exception(make_span):
    from opentelemetry.trace import Status, StatusCode

    span = make_span(**{"error.type": "RateLimitError", "gen_ai.usage.input_tokens": None,
                        "gen_ai.usage.output_tokens": None})
    # make_span ends spans OK; build an ended error span the SDK way
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    s = provider.get_tracer("t").start_span("openai.chat", attributes=dict(span.attributes))
    s.record_exception(RuntimeError("Error code: 429 - rate limited"))
    s.set_status(Status(StatusCode.ERROR, "rate limited"))
    s.end()
    r = normalize(exporter.get_finished_spans()[0])
    assert (r.status_code, r.error_type) == (429, "RateLimitError")
    assert Flag.MISSING_USAGE not in r.flags


def test_non_genai_spans_are_not_records(make_span):
    assert is_genai_span(make_span())
    plain = make_span(**{k: None for k in ("gen_ai.operation.name", "gen_ai.provider.name",
                                           "gen_ai.request.model")})
    assert not is_genai_span(plain)
