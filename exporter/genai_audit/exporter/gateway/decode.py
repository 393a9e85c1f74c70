"""OTLP trace requests (protobuf or JSON) -> SDK ``ReadableSpan`` objects the pipeline reads.

Bad input never raises past ``decode_*``: the request as a whole is either readable or
``MalformedRequest`` (HTTP 400 / gRPC INVALID_ARGUMENT), and inside a readable request each
span is accepted or rejected with a reason (OTLP partial success), so the good spans of a
mixed request are still stored.

* Protobuf strings that are not UTF-8 make the standard parser refuse the whole message.
  They are decoded again with a *lenient* copy of the OTLP schema in which every ``string``
  is ``bytes``; the bad bytes become surrogate escapes, which ``normalize`` repairs and flags
  (``invalid_utf8``): the record is kept, never the raw bytes.
* Unknown fields are ignored (protobuf keeps them aside; JSON parsing skips them), as the
  OTLP specification asks of receivers.
* OTLP/JSON ids are hex strings (not base64 as in the canonical protobuf JSON mapping).
* An attribute longer than the limit is truncated and the span marked ``truncated``.
* Nested values (arrays, kvlists) are read to ``MAX_DEPTH`` levels; deeper levels become
  the string ``CUT`` and the span is marked ``truncated``. The request is never refused
  for one deep attribute: the protobuf schema used here reads an ``AnyValue``'s array and
  kvlist as opaque bytes (same wire format), so the parser's recursion limit (100 message
  levels, reached by a kvlist nested ~32 deep) never applies to the request, and each
  nested level is parsed on its own, only as deep as it is used (``otlp_schema``).
  OTLP/JSON bodies are cut to the same depth before the protobuf JSON parser (also
  limited to 100 levels) sees them. A JSON body nested beyond Python's own parser
  (~1,000 levels) is unreadable: 400.
* Resource attributes that carry compliance context (``tenant.id``...) fill the span's own
  when it has none, so a service may set them once on its resource.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, unknown_fields
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from genai_audit.exporter.gateway.otlp_schema import (
    ANY_VALUE,
    LENIENT_PREFIX,
    NESTED,
    nested_classes,
    request_class,
)
from genai_audit.instrumentation.keys import BAGGAGE_KEYS

ExportRequest = trace_service_pb2.ExportTraceServiceRequest
_KINDS = {1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT, 4: SpanKind.PRODUCER,
          5: SpanKind.CONSUMER}
_STATUS = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
MAX_DEPTH = 8  # nested arrays / kvlists beyond this are cut
CUT = "[cut: nested deeper than 8 levels or unreadable]"


class MalformedRequest(ValueError):
    """The body is not an OTLP trace request at all (reason is safe to show the sender)."""


@dataclass
class DecodedSpan:
    span: ReadableSpan
    truncated: bool = False  # an attribute was cut to the size limit


@dataclass
class DecodeResult:
    spans: list[DecodedSpan] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> span count
    invalid_utf8: bool = False  # the lenient parser was needed
    unknown_fields: bool = False  # fields this schema version does not know (ignored)

    @property
    def total(self) -> int:
        return len(self.spans) + sum(self.rejected.values())


# -- entry points ----------------------------------------------------------------------------
def parse_protobuf(body: bytes, signal: str, what: str) -> tuple[Message, bool]:
    """An OTLP request of ``signal`` parsed with the shallow schema; True when it needed the
    lenient one (strings that were not UTF-8, repaired later). The one protobuf reader of
    traces and logs."""
    try:
        return request_class(lenient=False, signal=signal).FromString(body), False
    except DecodeError:
        try:
            return request_class(lenient=True, signal=signal).FromString(body), True
        except DecodeError as exc:
            raise MalformedRequest(f"body is not a valid OTLP {what} protobuf") from exc


def load_json_object(body: bytes, top_key: str) -> dict[str, Any]:
    """An OTLP/JSON body as a dict (MalformedRequest if it is not a JSON object). The one
    JSON reader of traces, logs and metrics."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedRequest("body is not valid JSON (UTF-8)") from exc
    if not isinstance(data, dict):
        raise MalformedRequest(f"body must be a JSON object with {top_key}")
    return data


def decode_protobuf(body: bytes, max_attribute_chars: int) -> DecodeResult:
    message, lenient = parse_protobuf(body, "traces", "ExportTraceServiceRequest")
    result = _convert(message, max_attribute_chars)
    result.invalid_utf8 |= lenient
    return result


def decode_json(body: bytes, max_attribute_chars: int) -> DecodeResult:
    data = load_json_object(body, "resourceSpans")
    rejected: Counter[str] = Counter()
    _hex_ids_to_base64(data, rejected)
    _cut_json_depth(data)
    try:
        parsed = json_format.ParseDict(data, ExportRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedRequest("body does not follow the OTLP/JSON trace schema") from exc
    # one reader of nested values for both encodings: the shallow schema's
    message = request_class(lenient=False).FromString(parsed.SerializeToString())
    result = _convert(message, max_attribute_chars)
    result.rejected.update(rejected)
    return result


def encode_response(rejected: int, message: str, *, as_json: bool) -> bytes:
    """An ``ExportTraceServiceResponse``, with ``partial_success`` when spans were rejected."""
    response = trace_service_pb2.ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if as_json:
        return str(json_format.MessageToJson(response, indent=None)).encode()
    return bytes(response.SerializeToString())


# -- message -> spans ----------------------------------------------------------------------
class _Reading:
    """What reading one request's nested values found (shared by its spans)."""

    invalid_utf8 = False


def _convert(message: Any, max_chars: int) -> DecodeResult:
    result = DecodeResult(unknown_fields=_has_unknown(message))
    reading = _Reading()
    for resource_spans in message.resource_spans:
        result.unknown_fields |= _has_unknown(resource_spans)
        resource_attrs, _ = _attributes(resource_spans.resource.attributes, max_chars, reading)
        resource = Resource(resource_attrs, _text(resource_spans.schema_url) or None)
        context = {k: resource_attrs[k] for k in BAGGAGE_KEYS if k in resource_attrs}
        for scope_spans in resource_spans.scope_spans:
            result.unknown_fields |= _has_unknown(scope_spans)
            scope = InstrumentationScope(_text(scope_spans.scope.name) or "unknown",
                                         _text(scope_spans.scope.version) or None,
                                         _text(scope_spans.schema_url) or None)
            for span in scope_spans.spans:
                result.unknown_fields |= _has_unknown(span)
                reason = _invalid(span)
                if reason:
                    result.rejected[reason] += 1
                    continue
                result.spans.append(_span(span, resource, scope, context, max_chars,
                                          reading))
    result.invalid_utf8 = reading.invalid_utf8
    return result


def _has_unknown(message: Any) -> bool:
    """Fields from a newer OTLP schema: ignored, as receivers must, but counted."""
    return len(unknown_fields.UnknownFieldSet(message)) > 0


def _invalid(span: Any) -> str:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "invalid_trace_id"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "invalid_span_id"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "invalid_parent_span_id"
    return ""


def _span(span: Any, resource: Resource, scope: InstrumentationScope,
          context: Mapping[str, Any], max_chars: int, reading: _Reading) -> DecodedSpan:
    attrs, truncated = _attributes(span.attributes, max_chars, reading)
    for key, value in context.items():
        attrs.setdefault(key, value)
    flags = TraceFlags(span.flags & 0xFF)
    trace_id = int.from_bytes(span.trace_id, "big")
    ctx = SpanContext(trace_id, int.from_bytes(span.span_id, "big"), is_remote=True,
                      trace_flags=flags)
    parent = (SpanContext(trace_id, int.from_bytes(span.parent_span_id, "big"), is_remote=True)
              if span.parent_span_id and any(span.parent_span_id) else None)
    events = []
    for event in span.events:
        event_attrs, cut = _attributes(event.attributes, max_chars, reading)
        truncated |= cut
        events.append(Event(_text(event.name), event_attrs, event.time_unix_nano or None))
    links = []
    for link in span.links:
        if len(link.trace_id) == 16 and len(link.span_id) == 8:
            link_attrs, cut = _attributes(link.attributes, max_chars, reading)
            truncated |= cut
            links.append(Link(SpanContext(int.from_bytes(link.trace_id, "big"),
                                          int.from_bytes(link.span_id, "big"), True),
                              link_attrs))
    status = Status(_STATUS.get(span.status.code, StatusCode.UNSET),
                    _text(span.status.message) or None)
    readable = ReadableSpan(
        name=_text(span.name)[:max_chars] or "unnamed", context=ctx, parent=parent,
        resource=resource, attributes=attrs, events=events, links=links,
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL), status=status,
        start_time=span.start_time_unix_nano or None,
        end_time=span.end_time_unix_nano or span.start_time_unix_nano or None,
        instrumentation_scope=scope)
    return DecodedSpan(readable, truncated)


def _attributes(pairs: Iterable[Any], max_chars: int, reading: _Reading
                ) -> tuple[dict[str, Any], bool]:
    out: dict[str, Any] = {}
    truncated = False
    for pair in pairs:
        key = _text(pair.key)
        if not key:
            continue
        value, cut = _value(pair.value, max_chars, reading)
        truncated |= cut
        if value is not None:
            out[key[:256]] = value
    return out, truncated


def _value(value: Any, max_chars: int, reading: _Reading) -> tuple[Any, bool]:
    """An OTLP ``AnyValue`` as an SDK attribute value (strings, numbers, bools, tuples);
    the flag says something was cut (length, depth or an unreadable nested value)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text = _text(value.string_value)
        if text == CUT:
            return text, True  # cut before parsing (OTLP/JSON)
        return (text[:max_chars], True) if len(text) > max_chars else (text, False)
    if kind in ("bool_value", "int_value", "double_value"):
        return getattr(value, kind), False
    if kind == "bytes_value":
        raw = base64.b64encode(value.bytes_value).decode()
        return (raw[:max_chars], True) if len(raw) > max_chars else (raw, False)
    if kind in NESTED:
        cut = [False]
        plain = _plain(value, 0, cut, reading)
        if kind == "array_value" and _homogeneous(plain):
            return tuple(plain), cut[0]
        text = json.dumps(plain, ensure_ascii=False, default=str)
        return (text[:max_chars], True) if len(text) > max_chars else (text, cut[0])
    return None, False


def _plain(value: Any, depth: int, cut: list[bool], reading: _Reading) -> Any:
    """An ``AnyValue`` as plain Python; ``cut[0]`` set when a level was cut."""
    kind = value.WhichOneof("value")
    if kind in NESTED:
        items = _nested(value, kind, reading) if depth < MAX_DEPTH else None
        if items is None:
            cut[0] = True
            return CUT
        if kind == "array_value":
            return [_plain(v, depth + 1, cut, reading) for v in items]
        return {_text(kv.key): _plain(kv.value, depth + 1, cut, reading) for kv in items}
    if kind == "string_value":
        text = _text(value.string_value)
        if text == CUT:
            cut[0] = True
        return text
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind else None


def _nested(value: Any, kind: str, reading: _Reading) -> Any:
    """The items of an array or kvlist held as bytes by the shallow schema (one level
    parsed; bad UTF-8 read leniently, as for the whole request); None when unreadable."""
    data = getattr(value, kind)
    lenient = f"{LENIENT_PREFIX}.{ANY_VALUE}"
    for name in dict.fromkeys((value.DESCRIPTOR.full_name, lenient)):
        try:
            items = nested_classes(name)[kind].FromString(data).values
        except DecodeError:
            continue
        reading.invalid_utf8 |= name == lenient
        return items
    return None


def _homogeneous(values: list[Any]) -> bool:
    kinds = {type(v) for v in values}
    return len(kinds) <= 1 and kinds <= {str, bool, int, float}


def _text(value: str | bytes) -> str:
    """A protobuf string; from the lenient parser, bytes with bad UTF-8 surrogate-escaped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


# -- OTLP/JSON depth ------------------------------------------------------------------------
def _cut_json_depth(data: dict[str, Any]) -> None:
    """Replace nested AnyValues deeper than ``MAX_DEPTH`` with the ``CUT`` string, in place,
    wherever OTLP carries attributes (resource, span, event, link)."""
    for resource_spans in _list(data.get("resourceSpans", data.get("resource_spans"))):
        resource = _get(resource_spans, "resource")
        _cut_attributes(_get(resource, "attributes"))
        for scope_spans in _list(_get(resource_spans, "scopeSpans", "scope_spans")):
            for span in _list(_get(scope_spans, "spans")):
                _cut_attributes(_get(span, "attributes"))
                for item in (*_list(_get(span, "events")), *_list(_get(span, "links"))):
                    _cut_attributes(_get(item, "attributes"))


def _cut_attributes(pairs: Any) -> None:
    for pair in _list(pairs):
        if isinstance(pair, dict) and isinstance(pair.get("value"), dict):
            _cut_any(pair["value"], 0)


def _cut_any(value: dict[str, Any], depth: int) -> None:
    """Iterative over siblings, recursive only to ``MAX_DEPTH``: bounded stack."""
    for camel, snake in (("arrayValue", "array_value"), ("kvlistValue", "kvlist_value")):
        key = camel if camel in value else snake if snake in value else None
        if key is None:
            continue
        if depth >= MAX_DEPTH:
            value.clear()
            value["stringValue"] = CUT
            return
        for item in _list(_get(value[key], "values")):
            inner = item.get("value") if camel == "kvlistValue" and isinstance(item, dict) \
                else item
            if isinstance(inner, dict):
                _cut_any(inner, depth + 1)


# -- OTLP/JSON ids -------------------------------------------------------------------------
def _hex_ids_to_base64(data: dict[str, Any], rejected: Counter[str]) -> None:
    """OTLP/JSON carries ids as hex; ``json_format`` expects base64 for ``bytes`` fields."""
    for resource_spans in _list(data.get("resourceSpans", data.get("resource_spans"))):
        for scope_spans in _list(_get(resource_spans, "scopeSpans", "scope_spans")):
            spans = _list(_get(scope_spans, "spans"))
            kept = []
            for span in spans:
                if not isinstance(span, dict) or not _fix_ids(span):
                    rejected["invalid_span_id"] += 1
                    continue
                for link in _list(span.get("links")):
                    if isinstance(link, dict):
                        _fix_ids(link)
                kept.append(span)
            if isinstance(scope_spans, dict):
                scope_spans["spans"] = kept


def _fix_ids(obj: dict[str, Any]) -> bool:
    for camel, snake in (("traceId", "trace_id"), ("spanId", "span_id"),
                         ("parentSpanId", "parent_span_id")):
        key = camel if camel in obj else snake if snake in obj else None
        if key is None:
            continue
        raw = obj[key]
        if not isinstance(raw, str):
            return False
        try:
            obj[key] = base64.b64encode(bytes.fromhex(raw)).decode() if raw else ""
        except (ValueError, binascii.Error):
            return False
    return True


def _get(obj: Any, *keys: str) -> Any:
    if not isinstance(obj, dict):
        return None
    for key in keys:
        if key in obj:
            return obj[key]
    snake = keys[0][0] + "".join("_" + c.lower() if c.isupper() else c for c in keys[0][1:])
    return obj.get(snake)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
