"""The ``opentelemetry-instrument`` distro and configurator.

``OTEL_TRACES_EXPORTER=genai_audit opentelemetry-instrument python app.py`` is all a
service needs: the configurator wires the ``genai_audit`` exporter behind a
``ComplianceSpanProcessor`` (baggage stamping, off-thread pipeline, sync durability per
tool) instead of the SDK's plain ``BatchSpanProcessor``; any other exporters named keep
the SDK's default processor. Baggage is stamped onto spans for every exporter, so spans
sent over OTLP to the gateway carry the compliance context too.

The distro's defaults (applied only where the environment says nothing):
``OTEL_TRACES_EXPORTER=genai_audit``, no metrics or logs exporters, and W3C trace context
plus baggage propagation.

GenAI log events: with the ``genai_audit`` exporter, the configurator also puts a
``GenAIEventLogProcessor`` on the SDK's ``LoggerProvider`` (set up whatever
``OTEL_LOGS_EXPORTER`` says), bound to the exporter's pipeline's ``EventJoiner``: producers
that send prompts and completions as log events (``openai-v2`` with content capture on)
get rows with content, joined to their span before redaction and encryption. Logs are
exported nowhere by default; a service sending spans to the gateway over OTLP sets
``OTEL_LOGS_EXPORTER=otlp`` so its events reach the gateway's ``/v1/logs``.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.context import Context
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.trace import Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from genai_audit.instrumentation.context import stamp_baggage
from genai_audit.processor.event_log_processor import GenAIEventLogProcessor

DISTRO_DEFAULTS = {
    "OTEL_TRACES_EXPORTER": "genai_audit",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_PROPAGATORS": "tracecontext,baggage",
}


class GenAIAuditDistro(BaseDistro):  # type: ignore[misc]
    """``OTEL_PYTHON_DISTRO=genai_audit``: sensible defaults for an audited service."""

    def _configure(self, **kwargs: Any) -> None:
        for key, value in DISTRO_DEFAULTS.items():
            os.environ.setdefault(key, value)


class BaggageStampingProcessor(SpanProcessor):
    """Copies the compliance baggage onto each span at start (for non-audit exporters)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        stamp_baggage(span, parent_context)


def _export_processor(exporter: SpanExporter,
                      events: GenAIEventLogProcessor | None = None) -> SpanProcessor:
    from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
    from genai_audit.processor.span_processor import ComplianceSpanProcessor

    if isinstance(exporter, ClickHouseSpanExporter):
        processor = ComplianceSpanProcessor(exporter, exporter.settings)  # builds the pipeline
        if events is not None:
            events.joiner = exporter.pipeline.joiner
        return processor
    return BatchSpanProcessor(exporter)


class GenAIAuditConfigurator(_OTelSDKConfigurator):
    """``OTEL_PYTHON_CONFIGURATOR=genai_audit`` (used automatically when it is the only one)."""

    def _configure(self, **kwargs: Any) -> None:
        events = GenAIEventLogProcessor()  # bound to the pipeline's joiner once it exists
        kwargs.setdefault("export_span_processor",
                          lambda exporter: _export_processor(exporter, events))
        kwargs.setdefault("log_record_processors", [events])
        exporters = os.environ.get("OTEL_TRACES_EXPORTER", "")
        if "genai_audit" not in exporters:
            kwargs.setdefault("span_processors", [BaggageStampingProcessor()])
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]
