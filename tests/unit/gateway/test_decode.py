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


def _ld(field: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (the generated classes refuse to build values
    this deep: their own parser has the limit in question)."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def _deep_pb(kind: str, levels: int) -> bytes:
    """An AnyValue nested ``levels`` deep (kvlist or array) around "bottom", as bytes."""
    value = _ld(1, b"bottom")
    for _ in range(levels):
        value = (_ld(6, _ld(1, _ld(1, b"k") + _ld(2, value))) if kind == "kvlist"
                 else _ld(5, _ld(1, value)))
    return value


def _deep_json(kind: str, levels: int) -> dict:
    value: dict = {"stringValue": "bottom"}
    for _ in range(levels):
        value = ({"kvlistValue": {"values": [{"key": "k", "value": value}]}} if kind == "kvlist"
                 else {"arrayValue": {"values": [value]}})
    return value


DEEP = (("deep.kv", "kvlist", 40), ("deep.arr", "array", 60), ("shallow", "kvlist", 2))


def _protobuf_with_deep_attributes(make_span):
    good, deep = make_span(genai_audit__tool="good"), make_span(genai_audit__tool="deep")
    request = encode_spans([good, deep])
    rs = request.resource_spans[0]
    ss = rs.scope_spans[0]
    span = ss.spans[1].SerializeToString() + b"".join(
        _ld(9, _ld(1, key.encode()) + _ld(2, _deep_pb(kind, n))) for key, kind, n in DEEP)
    scope = _ld(1, ss.scope.SerializeToString()) + _ld(2, span)
    resource = _ld(1, rs.resource.SerializeToString()) + _ld(2, scope)
    del ss.spans[1]
    return request.SerializeToString() + _ld(1, resource), good, deep


def _check_deep(result, good, deep):
    from genai_audit.exporter.gateway.decode import CUT

    by_id = {d.span.context.span_id: d for d in result.spans}
    assert set(by_id) == {good.context.span_id, deep.context.span_id}
    assert not by_id[good.context.span_id].truncated
    cut = by_id[deep.context.span_id]
    assert cut.truncated and cut.span.attributes["genai_audit.tool"] == "deep"
    assert CUT in cut.span.attributes["deep.kv"] and CUT in cut.span.attributes["deep.arr"]
    assert json.loads(cut.span.attributes["deep.kv"])["k"]["k"]["k"]  # the top levels kept
    assert json.loads(cut.span.attributes["shallow"]) == {"k": {"k": "bottom"}}


def test_a_deeply_nested_attribute_is_cut_and_flagged_not_the_request_refused(make_span):
    """A kvlist 40 deep (array 60) made the whole request a 400: the good span was lost."""
    body, good, deep = _protobuf_with_deep_attributes(make_span)
    _check_deep(decode_protobuf(body, 100_000), good, deep)
    bad_utf8 = body.replace(b"bottom", b"bott\xffm")  # deep, and not UTF-8 either
    result = decode_protobuf(bad_utf8, 100_000)
    assert result.invalid_utf8 and len(result.spans) == 2


def test_a_deeply_nested_json_attribute_is_cut_and_flagged(make_span):
    """json_format stops at 100 levels too: the same request as OTLP/JSON."""
    good, deep = make_span(genai_audit__tool="good"), make_span(genai_audit__tool="deep")
    data = _otlp_json([good, deep])
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"] += [
        {"key": key, "value": _deep_json(kind, n)} for key, kind, n in DEEP]
    _check_deep(decode_json(json.dumps(data).encode(), 100_000), good, deep)


def test_json_nested_beyond_pythons_parser_is_a_clear_malformed_request():
    body = b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(MalformedRequest, match="not valid JSON"):
        decode_json(body, 10_000)
