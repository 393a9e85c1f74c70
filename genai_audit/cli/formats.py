"""Pure formatting of query results: aligned table, CSV, JSON. No I/O here.

Values are neutralised for where they are printed (``genai_audit.neutralize``): the table
shows control characters written out, CSV cells never start like a formula, JSON escapes
invisible characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genai_audit.clickhouse.reports.render.common import plain
from genai_audit.clickhouse.reports.render.data import csv_text
from genai_audit.neutralize import json_text, visible

MAX_CELL = 80


def _cell(value: Any) -> str:
    value = plain(value)
    text = json_text(value) if isinstance(value, dict | list) else str(value)
    text = visible(text.replace("\n", "\\n"), keep="")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    columns = [_cell(c) for c in columns]
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line, rule, *body, footer])


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return csv_text(columns, rows)


def format_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    records = [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return json_text(records, indent=2)


FORMATTERS = {"table": format_table, "csv": format_csv, "json": format_json}
