"""Pure formatting of query results: aligned table, CSV, JSON. No I/O here."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from genai_audit.clickhouse.reports.render.common import plain

MAX_CELL = 80


def _cell(value: Any) -> str:
    value = plain(value)
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line, rule, *body, footer])


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([json.dumps(plain(v)) if isinstance(v, dict | list | tuple) else plain(v)
                         for v in row])
    return out.getvalue()


def format_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    records = [{c: plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return json.dumps(records, ensure_ascii=False, indent=2)


FORMATTERS = {"table": format_table, "csv": format_csv, "json": format_json}
