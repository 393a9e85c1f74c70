"""``format_markdown``: the report as Markdown (page one first: verdict, areas, provenance)."""

from __future__ import annotations

from genai_audit.clickhouse.reports.model import Report, Section, Table
from genai_audit.clickhouse.reports.render.common import (
    DISPLAY_ROWS,
    human,
    overall_text,
    provenance_items,
)


def format_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", f"**Verdict:** {overall_text(report)}", "",
             "## At a glance", "", "| Area | Status | Finding |", "| --- | --- | --- |"]
    lines += [f"| {s.title} | {s.status.label} | {_escape(s.summary)} |"
              for s in report.sections]
    lines += ["", "## Provenance", ""]
    lines += [f"- **{label}:** {_escape(value)}" for label, value in
              provenance_items(report.provenance)]
    for number, section in enumerate(report.sections, 1):
        lines += ["", *_section(number, section)]
    return "\n".join(lines).rstrip() + "\n"


def _section(number: int, section: Section) -> list[str]:
    lines = [f"## {number}. {section.title}", "", f"*Status: {section.status.label}.* "
             f"{section.summary}", ""]
    if section.figures:
        lines += [f"- {f.label}: **{_escape(f.value)}**" for f in section.figures] + [""]
    for table in section.tables:
        lines += _table(table)
    lines += [f"> Note: {note}" for note in section.notes]
    return lines


def _table(table: Table) -> list[str]:
    lines = [f"### {table.title}", ""]
    if not table.columns:
        return [*lines, table.note or "(no data)", ""]
    if not table.rows:
        return lines + ["(no rows)", ""] + ([table.caption, ""] if table.caption else [])
    lines += ["| " + " | ".join(table.columns) + " |",
              "| " + " | ".join("---" for _ in table.columns) + " |"]
    for row in table.rows[:DISPLAY_ROWS]:
        lines.append("| " + " | ".join(_escape(human(v, c))
                                       for v, c in zip(row, table.columns, strict=True)) + " |")
    lines.append("")
    if len(table.rows) > DISPLAY_ROWS:
        lines += [f"Showing {DISPLAY_ROWS:,} of {len(table.rows):,} rows here; the CSV and "
                  "JSON formats hold all of them.", ""]
    if table.caption:
        lines += [table.caption, ""]
    return lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
