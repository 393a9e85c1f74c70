"""``GenAIEventLogProcessor``: the in-process door for GenAI log events.

Installed by the distro on the SDK's ``LoggerProvider`` (``instrumentation/distro.py``), it
hands every GenAI event (``processor/events.py``) emitted in this process, with its span
context, to the ``EventJoiner`` of the record pipeline, which joins it into its span's
record before redaction and encryption, exactly as the gateway does with ``/v1/logs``.
Other log records are left to whatever other processors the provider has.

``on_emit`` runs on the application's thread (inside the instrumented call): it copies the
event into the joiner (a dict insert under a lock) and never raises into the SDK.
"""

from __future__ import annotations

import logging

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from genai_audit.processor.events import EventJoiner, GenAIEvent, genai_event_name
from genai_audit.safelog import log_failure

_log = logging.getLogger(__name__)
IN_PROCESS_SCOPE = ""  # one process, one trust domain: the scope of its events


class GenAIEventLogProcessor(LogRecordProcessor):
    """Feeds GenAI log events to ``joiner`` (bound later when None: the distro creates
    this processor before the trace exporter's pipeline exists)."""

    def __init__(self, joiner: EventJoiner | None = None) -> None:
        self.joiner = joiner
        self.unjoinable = 0  # GenAI events emitted outside any span

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        try:
            joiner = self.joiner
            record = log_record.log_record
            if joiner is None:
                return
            attrs = dict(record.attributes or {})
            name = genai_event_name(getattr(record, "event_name", None), attrs)
            if not name:
                return
            if not record.trace_id or not record.span_id:
                self.unjoinable += 1
                return
            joiner.add(IN_PROCESS_SCOPE, [GenAIEvent(
                name, f"{record.trace_id:032x}", f"{record.span_id:016x}", record.body, attrs,
                record.timestamp or record.observed_timestamp or 0)])
        except Exception as exc:  # a log processor must not raise into the SDK
            log_failure(_log, "genai-audit could not hold a GenAI log event", exc)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
