"""``format_json`` and ``format_csv_bundle``: the report for machines, every row, exact values.

JSON: one document (provenance, sections, figures, full tables). CSV: a zip of one CSV per
table plus ``provenance.csv`` and ``sections.csv``; entries carry the report's generation
time, so the same report always zips to the same bytes (and the same SHA-256). Text cells
never start like a formula and invisible characters are escaped (``genai_audit.neutralize``).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from genai_audit.clickhouse.reports.model import Figure, Report, Table
from genai_audit.clickhouse.reports.render.common import plain
from genai_audit.neutralize import csv_cell, json_text


def report_dict(report: Report) -> dict[str, Any]:
    p = report.provenance
    return {
        "title": report.title,
        "report_format_version": p.report_format_version,
        "overall": report.overall.value,
        "provenance": {
            "store": p.store, "database": p.database, "tenant": p.tenant,
            "period": {"start": plain(p.period.start), "end": plain(p.period.end),
                       "end_exclusive": True},
            "generated_at": plain(p.generated_at), "schema_version": p.schema_version,
            "tool_version": p.tool_version, "ledger_checkpoint": p.checkpoint,
            "verify_result": p.verify_result,
            "sha256": "published beside the file as <file>.sha256",
        },
        "sections": [{
            "key": s.key, "title": s.title, "status": s.status.value, "summary": s.summary,
            "figures": [_figure_dict(f) for f in s.figures],
            "tables": [_table_dict(t) for t in s.tables],
            "notes": list(s.notes),
        } for s in report.sections],
    }


def _figure_dict(figure: Figure) -> dict[str, Any]:
    """Numbers as JSON numbers (money as an exact decimal string would be a string again, so
    it is a number with ``unit`` USD); ``display`` is the text people read."""
    value: Any = figure.value
    if figure.number is not None:
        value = float(figure.number) if isinstance(figure.number, Decimal) else figure.number
    return {"label": figure.label, "value": value, "display": figure.value,
            "unit": figure.unit}


def _table_dict(table: Table) -> dict[str, Any]:
    return {"key": table.key, "title": table.title, "columns": table.columns,
            "rows": [plain(list(r)) for r in table.rows],
            "total_rows": table.total_rows if table.total_rows is not None else len(table.rows),
            "truncated": table.truncated, "note": table.note}


def format_json(report: Report) -> str:
    return json_text(report_dict(report), indent=2) + "\n"


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with a header: exact values (``plain``), structures as JSON, text as ``csv_cell``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, str):
        return csv_cell(value)
    exact = plain(value)  # numbers, times, ids, hex: nothing a spreadsheet runs
    return json_text(exact) if isinstance(exact, dict | list) else exact


def csv_files(report: Report) -> dict[str, str]:
    """File name -> CSV text, in a stable order."""
    doc = report_dict(report)
    prov = doc["provenance"]
    files = {
        "provenance.csv": csv_text(["field", "value"], [
            [k, json_text(v) if isinstance(v, dict) else v] for k, v in prov.items()]),
        "sections.csv": csv_text(["section", "title", "status", "summary"], [
            [s.key, s.title, s.status.value, s.summary] for s in report.sections]),
        "figures.csv": csv_text(["section", "figure", "value", "unit", "display"], [
            [s.key, f.label, f.value if f.number is None else f.number, f.unit, f.value]
            for s in report.sections for f in s.figures]),
    }
    for section in report.sections:
        for table in section.tables:
            if table.columns:
                files[f"{section.key}__{table.key}.csv"] = csv_text(table.columns, table.rows)
    return files


def format_csv_bundle(report: Report) -> bytes:
    stamp = report.provenance.generated_at.timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, text in csv_files(report).items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()
