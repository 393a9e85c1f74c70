"""Exporters: spans to the ClickHouse store in-process, and the OTLP gateway."""

from __future__ import annotations

from genai_audit.exporter.span_exporter import ClickHouseSpanExporter

__all__ = ["ClickHouseSpanExporter"]
