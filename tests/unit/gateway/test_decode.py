"""OTLP bodies -> ReadableSpans: protobuf, JSON, bad UTF-8, bad ids, limits."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from genai_audit.exporter.gateway.decode import MalformedRequest, decode_json, decode_protobuf
from genai_audit.processor.normalize import normalize
from genai_audit.processor.record import Flag


def _otlp_json(spans) -> dict:
    """The OTLP/JSON form: the protobuf JSON mapping with hex ids (as OTLP specifies)."""
    data = json_format.MessageToDict(encode_spans(spans))
    for rs in data["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return data


def test_protobuf_round_trip_keeps_identity_resource_and_attributes(make_span):
    span = make_span()
    result = decode_protobuf(encode_spans([span]).SerializeToString(), 10_000)
    assert result.rejected == {} and not result.invalid_utf8
    [decoded] = result.spans
    got = decoded.span
    assert got.context.trace_id == span.context.trace_id
    assert got.context.span_id == span.context.span_id
    assert got.resource.attributes["service.name"] == "test-svc"
    assert got.attributes["tenant.id"] == "acme"
    assert got.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert got.instrumentation_scope.name == "tests"
    record = normalize(got)
    assert record.id == normalize(span).id  # same deterministic record id as in-process
    assert record.prompt_tokens == 10 and record.tenant_id == "acme"


def test_json_with_hex_ids_and_unknown_fields(make_span):
    span = make_span()
    data = _otlp_json([span])
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["someFutureField"] = {"x": 1}
    data["futureTopLevel"] = 1
    result = decode_json(json.dumps(data).encode(), 10_000)
    [decoded] = result.spans
    assert decoded.span.context.span_id == span.context.span_id
    assert decoded.span.attributes["gen_ai.request.model"] == "gpt-4o"


def test_unknown_protobuf_fields_are_ignored_but_noticed(make_span):
    body = encode_spans([make_span()]).SerializeToString()
    assert not decode_protobuf(body, 10_000).unknown_fields
    future = body + b"\xf8\x07\x01"  # field 127 (varint) on the request: a newer schema
    result = decode_protobuf(future, 10_000)
    assert result.unknown_fields and len(result.spans) == 1


def test_invalid_utf8_is_repaired_and_flagged_not_dropped(make_span):
    body = encode_spans([make_span(enduser__id="bob-MARK")]).SerializeToString()
    bad = body.replace(b"bob-MARK", b"bob\xff\xfeARK")
    result = decode_protobuf(bad, 10_000)
    assert result.invalid_utf8
    [decoded] = result.spans
    record = normalize(decoded.span)
    assert Flag.INVALID_UTF8 in record.flags
    assert record.user_id is not None and record.user_id.startswith("bob")
    record.user_id.encode("utf-8")  # repaired: no lone surrogates left


def test_malformed_bodies_raise_a_clear_error():
    with pytest.raises(MalformedRequest, match="protobuf"):
        decode_protobuf(b"\x0a\xff\xff\xff\xff\x0f", 100)
    with pytest.raises(MalformedRequest, match="JSON"):
        decode_json(b"{not json", 100)
    with pytest.raises(MalformedRequest, match="schema"):
        decode_json(json.dumps({"resourceSpans": "nope"}).encode(), 100)


def test_invalid_ids_reject_only_that_span(make_span):
    good, bad = make_span(), make_span()
    request = encode_spans([good, bad])
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x00" * 8
    result = decode_protobuf(request.SerializeToString(), 10_000)
    assert len(result.spans) == 1 and result.rejected == {"invalid_span_id": 1}
    data = _otlp_json([good, bad])
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "zz-not-hex"
    result = decode_json(json.dumps(data).encode(), 10_000)
    assert len(result.spans) == 1 and result.rejected == {"invalid_span_id": 1}


def test_oversized_attribute_is_truncated_and_marked(make_span):
    span = make_span(gen_ai__input__messages="x" * 5000)
    [decoded] = decode_protobuf(encode_spans([span]).SerializeToString(), 1000).spans
    assert decoded.truncated
    assert len(decoded.span.attributes["gen_ai.input.messages"]) == 1000


def test_resource_level_context_fills_missing_span_attributes(make_span):
    request = encode_spans([make_span(tenant__id=None)])
    attr = request.resource_spans[0].resource.attributes.add()
    attr.key, attr.value.string_value = "tenant.id", "globex"
    [decoded] = decode_protobuf(request.SerializeToString(), 10_000).spans
    assert decoded.span.attributes["tenant.id"] == "globex"


def test_nested_values_become_json_strings(make_span):
    request = encode_spans([make_span()])
    attr = request.resource_spans[0].scope_spans[0].spans[0].attributes.add()
    attr.key = "nested"
    kv = attr.value.kvlist_value.values.add()
    kv.key, kv.value.int_value = "a", 1
    [decoded] = decode_protobuf(request.SerializeToString(), 10_000).spans
    assert json.loads(decoded.span.attributes["nested"]) == {"a": 1}
