"""OTLP log and metric requests (protobuf or JSON) -> GenAI events; metrics counted.

Logs: each log record whose event name (the ``event_name`` field, else the ``event.name``
attribute) is a GenAI event (``processor/events.py``) and that carries a valid span context
becomes a ``GenAIEvent``; every other record is counted (``ignored``) and dropped, as a
non-GenAI span is. A GenAI event without a span context cannot be joined to any record:
counted as ``unjoinable`` and dropped. Attribute and body values are read by the trace
decoder's bounded reader (``decode._value``): the same size limit, nesting depth and
lenient UTF-8 handling as spans.

Metrics: accepted so OTLP senders exporting every signal to one endpoint do not log
errors; the request is checked to be an OTLP metrics request, its metrics counted, and
dropped (nothing of an audit record is in a metric).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from genai_audit.exporter.gateway.decode import (
    MalformedRequest,
    _attributes,
    _cut_any,
    _list,
    _plain,
    _Reading,
    _text,
    _value,
    load_json_object,
    parse_protobuf,
)
from genai_audit.exporter.gateway.otlp_schema import NESTED, request_class
from genai_audit.instrumentation.keys import ATTR_TENANT, BAGGAGE_KEYS
from genai_audit.processor.events import GenAIEvent, genai_event_name


@dataclass
class DecodedLogs:
    events: list[GenAIEvent] = field(default_factory=list)
    claimed_tenants: list[str] = field(default_factory=list)  # per event ("" = none)
    ignored: int = 0  # log records that are not GenAI events
    unjoinable: int = 0  # GenAI events without a span context
    truncated: int = 0  # events with a value cut to the size limit
    invalid_utf8: bool = False

    @property
    def total(self) -> int:
        return len(self.events) + self.ignored + self.unjoinable


def decode_logs(body: bytes, max_chars: int, *, as_json: bool) -> DecodedLogs:
    if as_json:
        message = _logs_from_json(body)
        lenient = False
    else:
        message, lenient = parse_protobuf(body, "logs", "ExportLogsServiceRequest")
    result = _convert(message, max_chars)
    result.invalid_utf8 |= lenient
    return result


def count_metrics(body: bytes, *, as_json: bool) -> int:
    """The number of metrics in an OTLP metrics request (MalformedRequest if it is not one)."""
    if as_json:
        data = load_json_object(body, "resourceMetrics")
        return sum(len(_list(_get(sm, "metrics")))
                   for rm in _list(_get(data, "resourceMetrics"))
                   for sm in _list(_get(rm, "scopeMetrics")))
    try:
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as exc:
        raise MalformedRequest("body is not a valid OTLP ExportMetricsServiceRequest "
                               "protobuf") from exc
    return sum(len(sm.metrics) for rm in request.resource_metrics for sm in rm.scope_metrics)


def encode_logs_response(rejected: int, message: str, *, as_json: bool) -> bytes:
    """An ``ExportLogsServiceResponse``, with ``partial_success`` when records were rejected."""
    response = logs_service_pb2.ExportLogsServiceResponse()
    if rejected or message:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    return (str(json_format.MessageToJson(response, indent=None)).encode() if as_json
            else bytes(response.SerializeToString()))


def encode_metrics_response(*, as_json: bool) -> bytes:
    response = metrics_service_pb2.ExportMetricsServiceResponse()
    return (str(json_format.MessageToJson(response, indent=None)).encode() if as_json
            else bytes(response.SerializeToString()))


def _logs_from_json(body: bytes) -> Message:
    data = load_json_object(body, "resourceLogs")
    for rl in _list(_get(data, "resourceLogs")):
        _cut_pairs(_get(_get(rl, "resource"), "attributes"))
        for sl in _list(_get(rl, "scopeLogs")):
            for record in _list(_get(sl, "logRecords")):
                if not isinstance(record, dict):
                    continue
                _cut_pairs(_get(record, "attributes"))
                if isinstance(record.get("body"), dict):
                    _cut_any(record["body"], 0)
                for camel, snake in (("traceId", "trace_id"), ("spanId", "span_id")):
                    key = camel if camel in record else snake if snake in record else None
                    if key is not None:
                        record[key] = _b64(record[key])
    try:
        parsed = json_format.ParseDict(data, logs_service_pb2.ExportLogsServiceRequest(),
                                       ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedRequest("body does not follow the OTLP/JSON logs schema") from exc
    return request_class(lenient=False, signal="logs").FromString(parsed.SerializeToString())


def _b64(raw: Any) -> str:
    """OTLP/JSON ids are hex; an unreadable id becomes empty (the event is unjoinable)."""
    try:
        return base64.b64encode(bytes.fromhex(raw)).decode() if isinstance(raw, str) else ""
    except (ValueError, binascii.Error):
        return ""


def _cut_pairs(pairs: Any) -> None:
    for pair in _list(pairs):
        if isinstance(pair, dict) and isinstance(pair.get("value"), dict):
            _cut_any(pair["value"], 0)


def _get(obj: Any, camel: str) -> Any:
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(camel[0] + "".join("_" + c.lower() if c.isupper() else c
                                      for c in camel[1:]))


def _convert(message: Any, max_chars: int) -> DecodedLogs:
    result = DecodedLogs()
    reading = _Reading()
    for resource_logs in message.resource_logs:
        resource_attrs, _ = _attributes(resource_logs.resource.attributes, max_chars, reading)
        context = {k: resource_attrs[k] for k in BAGGAGE_KEYS if k in resource_attrs}
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs, cut = _attributes(record.attributes, max_chars, reading)
                name = genai_event_name(_text(record.event_name), attrs)
                if not name:
                    result.ignored += 1
                    continue
                trace_id, span_id = bytes(record.trace_id), bytes(record.span_id)
                if len(trace_id) != 16 or len(span_id) != 8 or not any(trace_id) \
                        or not any(span_id):
                    result.unjoinable += 1
                    continue
                body, body_cut = _body(record, max_chars, reading)
                for key, value in context.items():
                    attrs.setdefault(key, value)
                result.truncated += cut or body_cut
                result.claimed_tenants.append(str(attrs.get(ATTR_TENANT, "")).strip())
                result.events.append(GenAIEvent(
                    name, trace_id.hex(), span_id.hex(), body, attrs,
                    record.time_unix_nano or record.observed_time_unix_nano))
    result.invalid_utf8 = reading.invalid_utf8
    return result


def _body(record: Any, max_chars: int, reading: _Reading) -> tuple[Any, bool]:
    """The body as plain Python: a kvlist (legacy events' ``{"content": ...}``) as a dict,
    to ``MAX_DEPTH`` levels, a scalar by the attribute reader (size limit)."""
    if not record.HasField("body"):
        return None, False
    if record.body.WhichOneof("value") in NESTED:
        cut = [False]
        return _plain(record.body, 0, cut, reading), cut[0]
    return _value(record.body, max_chars, reading)
