"""The attribute mapping table: docs and data agree; every convention's keys are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genai_audit.processor import conventions as cv
from genai_audit.processor.normalize import is_genai_span, normalize
from genai_audit.processor.record import Flag

DOC = Path(__file__).resolve().parents[2] / "docs" / "attribute-mapping.md"
BEGIN, END = "<!-- mapping:begin -->", "<!-- mapping:end -->"
# the keys genai-audit set before the table: gone from it would be a silent regression
BARE = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens", "gen_ai.response.id", "gen_ai.system"}


def test_docs_table_is_the_data():
    text = DOC.read_text("utf-8")
    rendered = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert rendered == cv.render_markdown(), (
        "docs/attribute-mapping.md is stale: paste render_markdown() between the markers")


def test_the_table_ships_in_the_package():
    from importlib import resources

    data = json.loads(resources.files("genai_audit.processor").joinpath(
        "data/attribute_mapping.json").read_text("utf-8"))
    assert cv.load_mapping(json.dumps(data)) == cv.TABLE
    keys = {k for f in cv.TABLE.fields.values() for k, _ in f.keys}
    assert BARE <= keys


def test_a_malformed_table_is_refused():
    bad = {"version": "x", "types": {}, "fields": [{"field": "a", "type": "nope", "keys": []}],
           "indexed_messages": []}
    with pytest.raises(cv.MappingError, match="unknown type 'nope'"):
        cv.load_mapping(json.dumps(bad))


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("False", False), ("false", False), ("TRUE", True),
    ("0", False), ("1", True), (0, False), (1, True), ("maybe", None), (2, None),
])
def test_booleans_are_parsed_by_type(value, expected):
    assert cv.as_bool(value) is expected


@pytest.mark.parametrize("value, expected", [
    (("stop",), ["stop"]), ('["stop"]', ["stop"]), (("[\"stop\", \"length\"]",),
                                                   ["stop", "length"]),
    ("end_turn", ["end_turn"]), ("[not json", ["[not json"]),
])
def test_string_lists_are_parsed_by_type(value, expected):
    assert cv.read_string_list({"k": value}, ("k",)) == expected


def test_ints_from_strings_and_floats_bad_ones_skipped():
    assert cv.read_int({"a": "12", "b": 3}, ("a", "b")) == 12
    assert cv.read_int({"a": "x", "b": 3.0}, ("a", "b")) == 3
    assert cv.read_int({"a": True, "b": -1}, ("a", "b")) is None


# -- the reported defects, through normalize -------------------------------------------------
def test_streaming_false_as_a_string_is_false(make_span):
    r = normalize(make_span(**{"llm.is_streaming": "False"}))
    assert r.is_streaming is False
    assert normalize(make_span(**{"gen_ai.request.stream": True})).is_streaming is True


def test_finish_reasons_as_a_json_string_are_a_list(make_span):
    r = normalize(make_span(**{"gen_ai.response.finish_reasons": '["stop"]'}))
    assert r.finish_reasons == ("stop",)
    r = normalize(make_span(**{"gen_ai.response.finish_reasons": ('["stop","length"]',)}))
    assert r.finish_reasons == ("stop", "length")


@pytest.mark.parametrize("key", ["gen_ai.request.user", "user.id", "llm.user"])
def test_user_named_by_the_producer_lands_on_the_row(make_span, key):
    r = normalize(make_span(**{"enduser.id": None, key: "bob"}))
    assert r.user_id == "bob" and Flag.NO_USER not in r.flags


def test_baggage_user_wins_over_the_producers(make_span):
    r = normalize(make_span(**{"gen_ai.request.user": "bob"}))  # enduser.id=alice: baggage
    assert r.user_id == "alice"


def test_conversation_id_is_the_session(make_span):
    assert normalize(make_span(**{"gen_ai.conversation.id": "c-9"})).session_id == "c-9"


OPENINFERENCE = {
    "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
    "llm.system": "openai", "llm.token_count.prompt": 12, "llm.token_count.completion": 4,
    "llm.token_count.prompt_details.cache_read": 2,
    "llm.token_count.completion_details.reasoning": 1,
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "be brief",
    "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "hi",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.content": "hello", "user.id": "carol",
    "input.value": '{"messages": []}', "output.value": "{}",
}


_DEFAULTS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system",
             "gen_ai.request.model", "gen_ai.response.model", "gen_ai.response.id",
             "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
             "gen_ai.response.finish_reasons", "gen_ai.input.messages",
             "gen_ai.output.messages", "enduser.id")


def _only(attrs):
    """Overrides removing make_span's default GenAI attributes (the compliance baggage
    tenant.id and genai_audit.tool stays): a span of one producer's convention alone."""
    return {**dict.fromkeys(_DEFAULTS), **attrs}


def test_openinference_span(make_span):
    span = make_span(**_only(OPENINFERENCE))
    assert is_genai_span(span)
    r = normalize(span)
    assert (r.provider, r.model, r.user_id) == ("openai", "gpt-4o-mini", "carol")
    assert (r.prompt_tokens, r.response_tokens, r.cached_tokens, r.reasoning_tokens) == (
        12, 4, 2, 1)
    assert [m["role"] for m in r.content.input_messages] == ["system", "user"]
    assert r.content.output_messages[0]["parts"][0]["content"] == "hello"
    assert Flag.MISSING_USAGE not in r.flags


def test_openinference_raw_values_when_no_messages(make_span):
    r = normalize(make_span(**_only({"llm.model_name": "gpt-4o", "input.value": "question",
                                      "output.value": "answer"})))
    assert r.content.input_messages[0]["parts"][0]["content"] == "question"
    assert r.content.output_messages[0]["parts"][0]["content"] == "answer"


def test_traceloop_anthropic_span(make_span):
    r = normalize(make_span(**_only({
        "gen_ai.system": "Anthropic", "llm.request.type": "chat",
        "gen_ai.request.model": "claude-haiku-4-5", "gen_ai.usage.prompt_tokens": 1200,
        "gen_ai.usage.completion_tokens": 30, "gen_ai.usage.cache_creation_input_tokens": 1000,
        "gen_ai.usage.cache_read_input_tokens": 100,
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": json.dumps([{"type": "text", "text": "You are terse."}]),
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "hi",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hello",
        "gen_ai.completion.0.finish_reason": "end_turn"})))
    assert (r.provider, r.operation_name) == ("anthropic", "chat")
    assert (r.prompt_tokens, r.cached_tokens, r.cache_write_tokens) == (1200, 100, 1000)
    system = r.content.input_messages[0]
    assert system == {"role": "system", "parts": [{"type": "text",
                                                   "content": "You are terse."}]}


def test_openinference_request_parameters_and_response_body(make_span):
    r = normalize(make_span(**_only({
        "llm.model_name": "gpt-4o-mini", "llm.system": "openai", "llm.finish_reason": "stop",
        "llm.invocation_parameters": '{"model": "gpt-4o-mini", "stream": true, '
                                     '"user": "dave"}',
        "output.value": '{"id": "chatcmpl-9", "choices": []}', "enduser.id": None})))
    assert (r.is_streaming, r.request_id, r.user_id) == (True, "chatcmpl-9", "dave")
    assert r.finish_reasons == ("stop",)
    # malformed or non-object JSON is as good as absent
    r = normalize(make_span(**_only({"llm.model_name": "m", "llm.invocation_parameters": "{x",
                                      "output.value": "[1]"})))
    assert (r.is_streaming, r.request_id) == (False, "")
