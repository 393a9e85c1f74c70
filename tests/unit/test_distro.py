from __future__ import annotations

import os

from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.instrumentation.distro import (
    DISTRO_DEFAULTS,
    GenAIAuditDistro,
    _export_processor,
)
from genai_audit.processor.span_processor import ComplianceSpanProcessor


def test_audit_exporter_gets_the_compliance_processor(store: Store):
    exporter = ClickHouseSpanExporter(Settings.load(env={}), store=store)
    processor = _export_processor(exporter)
    assert isinstance(processor, ComplianceSpanProcessor) and processor.exporter is exporter
    processor.shutdown()
    other = _export_processor(InMemorySpanExporter())
    assert isinstance(other, BatchSpanProcessor)
    other.shutdown()


def test_distro_sets_defaults_without_overriding(monkeypatch):
    monkeypatch.setenv("OTEL_PROPAGATORS", "b3")
    for key in DISTRO_DEFAULTS:
        if key != "OTEL_PROPAGATORS":
            monkeypatch.delenv(key, raising=False)
    GenAIAuditDistro().configure()
    assert os.environ["OTEL_TRACES_EXPORTER"] == "genai_audit"
    assert os.environ["OTEL_PROPAGATORS"] == "b3"
