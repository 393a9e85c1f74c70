"""Pure renderers: ``Report`` in, file contents out. No store, no network, no clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genai_audit.clickhouse.reports.model import Report
from genai_audit.clickhouse.reports.render.data import format_csv_bundle, format_json
from genai_audit.clickhouse.reports.render.html import format_html
from genai_audit.clickhouse.reports.render.markdown import format_markdown


@dataclass(frozen=True)
class OutputFormat:
    name: str
    extension: str
    render: Callable[[Report], str | bytes]

    @property
    def binary(self) -> bool:
        return self.name == "csv"


FORMATS: dict[str, OutputFormat] = {
    "md": OutputFormat("md", ".md", format_markdown),
    "html": OutputFormat("html", ".html", format_html),
    "json": OutputFormat("json", ".json", format_json),
    "csv": OutputFormat("csv", ".zip", format_csv_bundle),
}


def render(report: Report, fmt: str) -> bytes:
    """The report file's bytes in ``fmt`` (md, html, json, csv: a zip of CSV files)."""
    out = FORMATS[fmt].render(report)
    return out if isinstance(out, bytes) else out.encode("utf-8")


__all__ = ["FORMATS", "OutputFormat", "format_csv_bundle", "format_html", "format_json",
           "format_markdown", "render"]
