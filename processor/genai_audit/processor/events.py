"""GenAI log events joined to their span's record: one joiner for both doors.

Some producers send a call's content as OpenTelemetry *log events*, not span attributes:
the official ``openai-v2`` instrumentation with content capture on emits
``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
``gen_ai.tool.message`` and ``gen_ai.choice`` (legacy conventions), or one
``gen_ai.client.inference.operation.details`` (latest experimental, ``event_only``). Each
carries the span context (trace id, span id) of the call it belongs to.

``EventJoiner`` holds such events, keyed by (scope, trace id, span id), until the record of
their span is built: ``attach`` (called before the record pipeline's stages) turns them into
the record's messages in the OpenTelemetry GenAI message format the records already use,
so redaction, rendering and encryption treat them as any other content. The in-process
path (the distro's log processor) and the gateway (``/v1/logs``, gRPC LogsService) feed
the same joiner class; the scope is the tenant of the gateway's bearer token (an event
never joins another tenant's span), ``""`` in-process.

Bounded: an event is held ``hold_s`` seconds (injected clock) and at most ``max_events``
are held; past either bound it is dropped from memory, never stored (its span never
came, so there is no record to redact it into) and returned by ``expire`` as a
``Dropped`` note (ids and counts only, never content) for the caller's control log.
Events are never written on their own: content reaches the store only inside a record,
after the record's redaction and encryption stages.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.processor.content import Content
from genai_audit.processor.flags import Flag
from genai_audit.processor.record import AuditRecord
from genai_audit.safelog import log_failure

#: event name -> where its message goes (input, output, system or the details event's JSON)
EVENT_NAMES: Mapping[str, str] = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "input",
    "gen_ai.assistant.message": "input",
    "gen_ai.tool.message": "input",
    "gen_ai.choice": "output",
    "gen_ai.client.inference.operation.details": "details",
}
#: the event that ends a call's events (what a span that came first waits for)
_CLOSING = frozenset({"gen_ai.choice", "gen_ai.client.inference.operation.details"})
EVENT_NAME_ATTR = "event.name"  # older SDKs: the event's name as an attribute
_DETAILS_KEYS = (("input", "gen_ai.input.messages"), ("output", "gen_ai.output.messages"),
                 ("system", "gen_ai.system_instructions"))


@dataclass(frozen=True)
class GenAIEvent:
    """One GenAI log event, with the ids of the span it belongs to (hex, as records)."""

    name: str
    trace_id: str
    span_id: str
    body: Any = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    time_ns: int = 0


@dataclass(frozen=True)
class Dropped:
    """Events of one span dropped unjoined (its span never came within the bound)."""

    scope: str
    trace_id: str
    span_id: str
    events: int
    reason: str  # "expired" or "capacity"


def genai_event_name(event_name: str | None, attributes: Mapping[str, Any] | None) -> str:
    """The GenAI event name of a log record (its ``event_name`` field, else the
    ``event.name`` attribute); "" when it is not one of ``EVENT_NAMES``."""
    name = event_name or str((attributes or {}).get(EVENT_NAME_ATTR) or "")
    return name if name in EVENT_NAMES else ""


def event_messages(events: Sequence[GenAIEvent]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], str, str, str]:
    """(input, output, system) messages from legacy events, in time order; plus the
    details event's (input, output, system) JSON texts ("" when absent)."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    details = {"input": "", "output": "", "system": ""}
    for event in sorted(events, key=lambda e: e.time_ns):
        kind = EVENT_NAMES[event.name]
        if kind == "details":
            for slot, key in _DETAILS_KEYS:
                value = event.attributes.get(key)
                if value is not None and not details[slot]:
                    details[slot] = value if isinstance(value, str) else json.dumps(
                        _plain(value), ensure_ascii=False, default=str)
            continue
        body = _plain(event.body)
        body = body if isinstance(body, dict) else {"content": body} if body else {}
        if kind == "output":
            message = body.get("message")
            message = message if isinstance(message, dict) else {}
            out = _message(str(message.get("role") or "assistant"), message)
            if body.get("finish_reason"):
                out["finish_reason"] = str(body["finish_reason"])
            if out["parts"]:
                outputs.append(out)
            continue
        role = event.name[len("gen_ai."):-len(".message")]
        msg = _message(role, body)
        if msg["parts"]:
            (system if kind == "system" else inputs).append(msg)
    return inputs, outputs, system, details["input"], details["output"], details["system"]


def _message(role: str, body: Mapping[str, Any]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    content = body.get("content")
    if role == "tool" and content is not None:
        parts.append({"type": "tool_call_response", "id": str(body.get("id", "")),
                      "response": _text(content)})
    elif content is not None and content != "":
        parts.append({"type": "text", "content": _text(content)})
    calls = body.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            parts.append({"type": "tool_call", "id": str(call.get("id", "")),
                          "name": str(function.get("name", "")),
                          "arguments": function.get("arguments", "")})
    return {"role": role, "parts": parts}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_plain(value), ensure_ascii=False,
                                                            default=str)


def _plain(value: Any) -> Any:
    """SDK attribute/body values (tuples, mappings) as plain JSON-able values; OTLP values
    decoded by the gateway are already plain."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def content_from_events(events: Sequence[GenAIEvent], flags: set[Flag]) -> Content:
    """The content the events carry: the details event's JSON (parsed late, as a span's),
    else the legacy events' messages."""
    inputs, outputs, system, input_json, output_json, system_json = event_messages(events)
    if input_json or output_json:
        return Content.from_json(input_json, output_json, system_json, flags)
    return Content(inputs, outputs, system)


_Key = tuple[str, str, str]


class EventJoiner:
    """Holds GenAI events until their span's record is built. Thread-safe."""

    def __init__(self, hold_s: float = 30.0, max_events: int = 10_000,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.hold_s, self.max_events, self._clock = hold_s, max_events, clock
        self._held: OrderedDict[_Key, tuple[float, list[GenAIEvent]]] = OrderedDict()
        self._count = 0
        self._dropped: list[Dropped] = []
        self._lock = threading.Condition(threading.Lock())  # notified when events arrive
        self._active: dict[str, float] = {}  # scope -> when it last sent events
        self.waiting = 0  # callers in ``wait_for_events`` now
        # where drops are recorded besides the log (the owner's ``control_events``)
        self.on_dropped: Callable[[list[Dropped]], None] | None = None
        self.stats = {"received": 0, "joined": 0, "dropped": 0}

    def add(self, scope: str, events: Iterable[GenAIEvent]) -> None:
        now = self._clock.monotonic()
        with self._lock:
            for event in events:
                key = (scope, event.trace_id, event.span_id)
                held = self._held.get(key)
                if held is None:
                    self._held[key] = (now, [event])
                else:
                    held[1].append(event)
                self._count += 1
                self.stats["received"] += 1
            while self._count > self.max_events and self._held:
                self._drop_oldest("capacity")
            self._active[scope] = now
            self._lock.notify_all()

    def attach(self, scope: str, records: Sequence[AuditRecord]) -> list[AuditRecord]:
        """Give each record the content of its span's held events (and of the spans merged
        into it); a record whose span carried content keeps the richer of the two. Returns
        the records that received events."""
        if not self._held:  # events off (the default path): one dict check per batch
            return []
        joined: list[AuditRecord] = []
        for record in records:
            with self._lock:
                events: list[GenAIEvent] = []
                for span_id in (record.span_id, *_merged_span_ids(record)):
                    held = self._held.pop((scope, record.trace_id, span_id), None)
                    if held is not None:
                        events += held[1]
                self._count -= len(events)
                self.stats["joined"] += len(events)
            if not events:
                continue
            joined.append(record)
            content = content_from_events(events, record.flags)
            if content.size() > record.content.size():
                record.content = content
        return joined

    def sends_events(self, scope: str) -> bool:
        """True when ``scope`` sent GenAI events within the last ``hold_s`` (its content-less
        spans may have events still on their way)."""
        since = self._active.get(scope)
        return since is not None and self._clock.monotonic() - since <= self.hold_s

    def wait_for_events(self, scope: str, records: Sequence[AuditRecord], wait_s: float,
                        poll_s: float = 0.05) -> None:
        """Block until every record's span holds its *closing* event (``gen_ai.choice`` or
        the details event: a call's events may come in several requests, the output last),
        or ``wait_s`` (clock time) has passed. Woken when events arrive; ``poll_s`` (real
        time) only re-reads the clock, so a ``ManualClock`` moved by a test ends it too."""
        keys = [(scope, r.trace_id, r.span_id) for r in records]
        deadline = self._clock.monotonic() + wait_s
        with self._lock:
            self.waiting += 1
            self._lock.notify_all()
            try:
                while (not all(self._closed(k) for k in keys)
                       and self._clock.monotonic() < deadline):
                    self._lock.wait(poll_s)
            finally:
                self.waiting -= 1

    def _closed(self, key: _Key) -> bool:
        held = self._held.get(key)
        return held is not None and any(e.name in _CLOSING for e in held[1])

    def await_waiters(self, count: int, timeout_s: float) -> bool:
        """For tests: True once ``count`` callers are in ``wait_for_events``."""
        with self._lock:
            return self._lock.wait_for(lambda: self.waiting >= count, timeout_s)

    def expire(self) -> list[Dropped]:
        """Drop events held longer than ``hold_s``; return every drop since the last call
        (the caller records them as control notes)."""
        now = self._clock.monotonic()
        with self._lock:
            while self._held:
                _, (since, _events) = next(iter(self._held.items()))
                if now - since <= self.hold_s:
                    break
                self._drop_oldest("expired")
            dropped, self._dropped = self._dropped, []
        return dropped

    def held(self) -> int:
        return self._count

    def _drop_oldest(self, reason: str) -> None:
        key, (_, events) = self._held.popitem(last=False)
        self._count -= len(events)
        self.stats["dropped"] += len(events)
        self._dropped.append(Dropped(key[0], key[1], key[2], len(events), reason))


def _merged_span_ids(record: AuditRecord) -> list[str]:
    """The span ids of ``trace:span`` entries of the record's own trace."""
    prefix = f"{record.trace_id}:"
    return [m[len(prefix):] for m in record.merged_span_ids if m.startswith(prefix)]


def report_dropped(log: logging.Logger, joiner: EventJoiner) -> int:
    """Expire the joiner's events past the bound and log each drop (ids and counts only,
    never content): the control note of events whose span never came. Returns the number
    of events dropped."""
    dropped = 0
    notes = joiner.expire()
    if notes and joiner.on_dropped is not None:
        try:
            joiner.on_dropped(notes)
        except Exception as exc:  # the notes are still logged below
            log_failure(log, "recording dropped GenAI events failed", exc)
    for note in notes:
        dropped += note.events
        log.warning("%d GenAI event(s) of span %s/%s dropped unjoined (%s): their span did "
                    "not arrive within %ss; their content was not stored", note.events,
                    note.trace_id, note.span_id, note.reason, joiner.hold_s)
    return dropped
