"""The auditor's report: queries per section (this package) and pure renderers (``render``).

``build_report(store, tenant=..., start=..., end=...)`` returns a ``Report``;
``render.format_markdown`` / ``format_html`` / ``format_json`` / ``format_csv_bundle`` turn it
into a file.
"""

from __future__ import annotations

from genai_audit.clickhouse.reports.build import STEPS, build_report
from genai_audit.clickhouse.reports.integrity import Verifier, VerifyOutcome
from genai_audit.clickhouse.reports.model import (
    Chart,
    Figure,
    Period,
    Provenance,
    Report,
    Section,
    Status,
    Table,
)
from genai_audit.clickhouse.reports.retention import RetentionFacts, RetentionProvider

__all__ = ["STEPS", "Chart", "Figure", "Period", "Provenance", "Report", "RetentionFacts",
           "RetentionProvider", "Section", "Status", "Table", "Verifier", "VerifyOutcome",
           "build_report"]
