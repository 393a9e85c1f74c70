"""``format_markdown``: the report as Markdown (page one first: verdict, areas, provenance).

Every piece of text goes through ``markdown_text`` (``genai_audit.neutralize``): a value from
the store is shown literally, never rendered as Markdown or HTML."""

from __future__ import annotations

from genai_audit.clickhouse.reports.model import Report, Section, Table
from genai_audit.clickhouse.reports.render.common import (
    DISPLAY_ROWS,
    human,
    overall_text,
    provenance_items,
)
from genai_audit.neutralize import markdown_text as _escape


def format_markdown(report: Report) -> str:
    lines = [f"# {_escape(report.title)}", "", f"**Verdict:** {_escape(overall_text(report))}", "",
             "## At a glance", "", "| Area | Status | Finding |", "| --- | --- | --- |"]
    lines += [f"| {_escape(s.title)} | {s.status.label} | {_escape(s.summary)} |"
              for s in report.sections]
    lines += ["", "## Provenance", ""]
    lines += [f"- **{label}:** {_escape(value)}" for label, value in
              provenance_items(report.provenance)]
    for number, section in enumerate(report.sections, 1):
        lines += ["", *_section(number, section)]
    return "\n".join(lines).rstrip() + "\n"


def _section(number: int, section: Section) -> list[str]:
    lines = [f"## {number}. {_escape(section.title)}", "", f"*Status: {section.status.label}.* "
             f"{_escape(section.summary)}", ""]
    if section.figures:
        lines += [f"- {_escape(f.label)}: **{_escape(f.value)}**" for f in section.figures] + [""]
    for table in section.tables:
        lines += _table(table)
    lines += [f"> Note: {_escape(note)}" for note in section.notes]
    return lines


def _table(table: Table) -> list[str]:
    lines = [f"### {_escape(table.title)}", ""]
    if not table.columns:
        return [*lines, _escape(table.note or "(no data)"), ""]
    if not table.rows:
        return lines + ["(no rows)", ""] + ([_escape(table.caption), ""] if table.caption else [])
    lines += ["| " + " | ".join(_escape(c) for c in table.columns) + " |",
              "| " + " | ".join("---" for _ in table.columns) + " |"]
    for row in table.rows[:DISPLAY_ROWS]:
        lines.append("| " + " | ".join(_escape(human(v, c))
                                       for v, c in zip(row, table.columns, strict=True)) + " |")
    lines.append("")
    if len(table.rows) > DISPLAY_ROWS:
        lines += [f"Showing {DISPLAY_ROWS:,} of {len(table.rows):,} rows here; the CSV and "
                  "JSON formats hold all of them.", ""]
    if table.caption:
        lines += [_escape(table.caption), ""]
    return lines
