"""Span -> AuditRecord: read the GenAI semantic attributes, tolerate everything else.

Which attribute fills which field, for every convention read (OpenTelemetry GenAI current
and deprecated, OpenInference, Traceloop, provider attributes), is the mapping table in
``conventions`` (``docs/attribute-mapping.md``). Messages JSON (``gen_ai.input.messages``)
wins over indexed keys (``gen_ai.prompt.N.content``, ``llm.input_messages.N.message.content``),
which win over OpenInference's raw ``input.value``.
Bad input never raises: it is repaired where possible and flagged on the record.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from genai_audit.instrumentation.keys import (
    ATTR_DATA_CLASS,
    ATTR_FEATURE,
    ATTR_GUARD_ENTITY_COUNTS,
    ATTR_HIPAA_COMPLIANT_ROUTE,
    ATTR_LIMIT_FLAGS,
    ATTR_LIMIT_REFUSED,
    ATTR_PII_REDACTED_BEFORE_LLM,
    ATTR_REGION,
    ATTR_ROUTE_DECISION,
    ATTR_TOOL,
)
from genai_audit.processor import conventions as cv
from genai_audit.processor.content import (
    Content,
    clean_text,
    message_from_text,
    parse_messages,
    system_messages,
    text_message,
)
from genai_audit.processor.record import (
    NO_ENTITY_COUNTS,
    UNATTRIBUTED_TENANT,
    AuditRecord,
    Flag,
)

MAX_FIELD_CHARS = 1_000_000  # per content attribute; longer content is truncated and flagged
MAX_ID_CHARS = 256  # tenant, user, tool... anything longer is cut
MAX_STATUS_CODE = 999  # an HTTP status attribute above this is not one (ignored)
DEFAULT_TOOL = "unspecified"

_GENAI_MARKERS = cv.GENAI_MARKERS
_STATUS_RE = re.compile(r"(?:Error code|status(?: code)?)[:= ]+(\d{3})\b", re.IGNORECASE)
_UINT32_MAX = 2**32 - 1


def is_genai_span(span: ReadableSpan) -> bool:
    """True for spans of an LLM call; everything else is not an audit record."""
    attrs = _plain(span)
    return any(key in attrs for key in _GENAI_MARKERS)


def _plain(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain mapping, read-only. An SDK span's are
    ``BoundedAttributes`` (behind a read-only proxy), which take a lock on every lookup; an
    ended span's cannot change, so their backing dict is read directly when the SDK has one
    (private, hence the fallback: one copy, which still beats many locked lookups)."""
    backing = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(backing, dict):
        return backing
    return dict(span.attributes or {})


def record_id(trace_id: int, span_id: int) -> str:
    """A UUID (v4 layout) fixed by the span's identity: a replayed span maps to the same record."""
    h = hashlib.sha256(b"%032x%016x" % (trace_id, span_id)).hexdigest()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def normalize(span: ReadableSpan) -> AuditRecord:
    attrs = _plain(span)
    flags: set[Flag] = set()
    text = _TextReader(attrs, flags)
    ctx = span.get_span_context()
    trace_id, span_id = (ctx.trace_id, ctx.span_id) if ctx is not None else (0, 0)
    start_ns = span.start_time or 0
    end_ns = span.end_time or start_ns
    if start_ns <= 0:  # not 1970: the row TTL would expire the record at once
        flags.add(Flag.MISSING_START_TIME)
        start_ns = end_ns if end_ns > 0 else time.time_ns()
        end_ns = max(end_ns, start_ns)
    tenant = text.first(cv.TENANT_KEYS)
    if not tenant:
        tenant = UNATTRIBUTED_TENANT
        flags.add(Flag.UNATTRIBUTED)
    user = text.first(cv.USER_KEYS) or None
    if user is None:
        flags.add(Flag.NO_USER)
    prompt_tokens, response_tokens = _usage(attrs, flags, span)
    model = text.first(cv.MODEL_KEYS)
    response_model = text.first(cv.RESPONSE_MODEL_KEYS)
    parent = span.parent
    scope = span.instrumentation_scope
    resource_attrs = span.resource.attributes if span.resource is not None else {}
    guarded = attrs.get(ATTR_PII_REDACTED_BEFORE_LLM) is True
    guard_counts = _guard_counts(attrs) if guarded else NO_ENTITY_COUNTS
    decision = text.ident(ATTR_ROUTE_DECISION)
    if decision in _ROUTE_FLAGS:
        flags.add(_ROUTE_FLAGS[decision])
    for name in (text.ident(ATTR_LIMIT_REFUSED), *text.ident(ATTR_LIMIT_FLAGS).split(",")):
        if name in _LIMIT_FLAGS:
            flags.add(_LIMIT_FLAGS[name])
    return AuditRecord(
        id=record_id(trace_id, span_id),
        trace_id=f"{trace_id:032x}",
        span_id=f"{span_id:016x}",
        event_timestamp=datetime.fromtimestamp(start_ns // 1000 / 1e6, tz=UTC),
        tenant_id=tenant,
        user_id=user,
        session_id=text.first(cv.SESSION_KEYS),
        tool_name=text.ident(ATTR_TOOL) or DEFAULT_TOOL,
        feature_name=text.ident(ATTR_FEATURE),
        region=text.ident(ATTR_REGION),
        data_class=text.ident(ATTR_DATA_CLASS),
        service_name=clean_text(str(resource_attrs.get("service.name", "")), flags)[:MAX_ID_CHARS],
        operation_name=text.first(cv.OPERATION_KEYS) or span.name[:MAX_ID_CHARS],
        provider=text.first(cv.PROVIDER_KEYS).lower() or "unknown",
        model=model or "unknown",
        response_model=response_model,
        request_id=text.first(cv.RESPONSE_ID_KEYS),
        prompt_tokens=prompt_tokens,
        response_tokens=response_tokens,
        cached_tokens=cv.read_int(attrs, cv.CACHE_READ_KEYS) or 0,
        cache_write_tokens=cv.read_int(attrs, cv.CACHE_WRITE_KEYS) or 0,
        reasoning_tokens=cv.read_int(attrs, cv.REASONING_KEYS) or 0,
        latency_ms=min(max(0, round((end_ns - start_ns) / 1e6)), _UINT32_MAX),
        status_code=_status_code(span, attrs),
        error_type=text.ident("error.type"),
        finish_reasons=tuple([clean_text(r, flags) for r in
                              cv.read_string_list(attrs, cv.FINISH_REASON_KEYS) or ()]),
        is_streaming=cv.read_bool(attrs, cv.STREAMING_KEYS) is True,
        content=_content(attrs, text, flags),
        producers=(scope.name[:MAX_ID_CHARS],) if scope is not None and scope.name else (),
        parent_span_id=f"{parent.span_id:016x}" if parent is not None else "",
        end_ns=end_ns,
        flags=flags,
        pii_redacted_before_llm=guarded,
        has_pii_detected=bool(guard_counts),
        pii_entity_counts=guard_counts,
        hipaa_compliant_route=attrs.get(ATTR_HIPAA_COMPLIANT_ROUTE) is True,
    )


_ROUTE_FLAGS = {"rerouted": Flag.ROUTE_REROUTED, "refused": Flag.ROUTE_REFUSED}
_LIMIT_FLAGS = {flag.value: flag for flag in (Flag.RATE_LIMITED, Flag.BUDGET_EXCEEDED,
                                              Flag.LIMITER_UNAVAILABLE, Flag.BUDGET_ALARM)}


def _guard_counts(attrs: Mapping[str, Any]) -> dict[str, int]:
    """The guard's entity counts (JSON object of type -> count); anything else is ignored."""
    try:
        parsed = json.loads(str(attrs.get(ATTR_GUARD_ENTITY_COUNTS) or "{}"))
    except (json.JSONDecodeError, RecursionError):
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k)[:64]: min(int(v), 2**32 - 1) for k, v in parsed.items()
            if isinstance(v, int) and not isinstance(v, bool) and v > 0}


class _TextReader:
    """Reads string attributes, repairing invalid UTF-8 and flagging it."""

    def __init__(self, attrs: Mapping[str, Any], flags: set[Flag]) -> None:
        self.attrs, self.flags = attrs, flags

    def first(self, keys: tuple[str, ...]) -> str:
        """The first non-blank text among ``keys`` (the mapping table's order; its
        ``attr#field`` keys, always last, only when no plain key gave one)."""
        get = self.attrs.get
        for key in keys:
            if (raw := get(key)) is not None and (value := self._text(raw)):
                return value
        if keys and keys[-1] in cv.JSON_KEYS:
            for key in keys:
                if key in cv.JSON_KEYS and (value := self._text(cv.json_field(self.attrs, key))):
                    return value
        return ""

    def first_content(self, keys: tuple[str, ...]) -> str | None:
        for key in keys:
            if (value := self.content(key)):
                return value
        return None

    def ident(self, key: str) -> str:
        return self._text(self.attrs.get(key))

    def _text(self, value: Any) -> str:
        if value is None:
            return ""
        if type(value) is str and value.isascii() and "\x00" not in value:
            return value.strip()[:MAX_ID_CHARS]  # the common case, without the checks below
        return clean_text(str(value), self.flags).strip()[:MAX_ID_CHARS]

    def content(self, key: str) -> str | None:
        value = self.attrs.get(key)
        if value is None:
            return None
        cleaned = clean_text(str(value), self.flags)
        if len(cleaned) > MAX_FIELD_CHARS:
            self.flags.add(Flag.CONTENT_TRUNCATED)
            cleaned = cleaned[:MAX_FIELD_CHARS]
        return cleaned


def _usage(attrs: Mapping[str, Any], flags: set[Flag], span: ReadableSpan) -> tuple[int, int]:
    prompt = cv.read_int(attrs, cv.INPUT_TOKEN_KEYS)
    response = cv.read_int(attrs, cv.OUTPUT_TOKEN_KEYS)
    failed = span.status is not None and span.status.status_code == StatusCode.ERROR
    if (prompt is None or response is None) and not failed:
        flags.add(Flag.MISSING_USAGE)
    return prompt or 0, response or 0


_HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")


def _status_code(span: ReadableSpan, attrs: Mapping[str, Any]) -> int:
    """200 for a successful call; the provider's HTTP status for a failed one; 0 if unknown."""
    http = cv.read_int(attrs, _HTTP_STATUS_KEYS)
    if http is not None and 0 < http <= MAX_STATUS_CODE:
        return http
    failed = (span.status is not None and span.status.status_code == StatusCode.ERROR) or bool(
        attrs.get("error.type"))
    if not failed:
        return 200
    for event in span.events:
        match = _STATUS_RE.search(str((event.attributes or {}).get("exception.message", "")))
        if match:
            return int(match.group(1))
    description = span.status.description if span.status is not None else None
    match = _STATUS_RE.search(description or "")
    return int(match.group(1)) if match else 0


def _content(attrs: Mapping[str, Any], text: _TextReader, flags: set[Flag]) -> Content:
    """The messages as JSON text, parsed later (``Content``); indexed keys only when the
    messages JSON is absent, the raw ``input.value``/``output.value`` text only when neither
    is there."""
    input_json = text.first_content(cv.INPUT_JSON_KEYS)
    output_json = text.first_content(cv.OUTPUT_JSON_KEYS)
    system_json = text.first_content(cv.SYSTEM_JSON_KEYS)
    if input_json or output_json:
        return Content.from_json(input_json, output_json, system_json, flags)
    legacy_in, legacy_out = _indexed_messages(attrs, text)
    if not legacy_in and (raw_in := text.first_content(cv.INPUT_TEXT_KEYS)):
        legacy_in = [text_message("user", raw_in)]
    if not legacy_out and (raw_out := text.first_content(cv.OUTPUT_TEXT_KEYS)):
        legacy_out = [text_message("assistant", raw_out)]
    system = (system_messages(parse_messages(system_json, "system",
                                             Flag.MALFORMED_INPUT_MESSAGES, flags))
              if system_json else ())
    return Content(legacy_in, legacy_out, system)


def _indexed_messages(attrs: Mapping[str, Any], text: _TextReader) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    """Indexed keys of the mapping table (``gen_ai.prompt.N.role``,
    ``llm.input_messages.N.message.content``...). A content that is a JSON array of parts
    (``[{"type": "text", "text": ...}]``, as Traceloop writes list-valued content) becomes
    those parts."""
    found: dict[tuple[str, int], dict[str, str]] = {}
    prefixes = cv.INDEXED_PREFIXES
    for key in attrs:
        if key.startswith(prefixes) and (match := cv.match_indexed(key)) is not None:
            direction, index, part = match
            found.setdefault((direction, index), {})[part] = text.content(key) or ""
    prompts: list[dict[str, Any]] = []
    completions: list[dict[str, Any]] = []
    for (direction, _index), fields in sorted(found.items()):
        role = fields.get("role") or ("user" if direction == "input" else "assistant")
        message = message_from_text(role, fields.get("content", ""), fields.get("finish_reason"))
        (prompts if direction == "input" else completions).append(message)
    return prompts, completions
