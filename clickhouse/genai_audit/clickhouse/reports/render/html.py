"""``format_html``: one self-contained HTML file (inline CSS and SVG; no scripts, no network).

Page one is written for a compliance officer: a verdict in one sentence, one card per area
with its status and a plain finding, the headline numbers, and where the report came from.
The detail (figures, charts, tables) follows, one section per area, printable page by page.
"""

from __future__ import annotations

import re

from genai_audit.clickhouse.reports.model import Report, Section, Status, Table
from genai_audit.clickhouse.reports.render.common import (
    DISPLAY_ROWS,
    human,
    overall_text,
    period_text,
    provenance_items,
)
from genai_audit.clickhouse.reports.render.svg import render_chart
from genai_audit.neutralize import html_text


def escape(text: str) -> str:
    """``html_text``; `code` spans (as the notes write command names) become <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html_text(text))


INTRO = ("This report covers every call the organisation's applications made to large "
         "language models (LLMs) in the period: who made it (as a pseudonymous key), with "
         "which tool and model, what it cost, whether personal data was protected before it "
         "reached the model, and whether the records can be shown to be unaltered. Each "
         "area below says in one sentence what was found.")

HEADLINES = (("soc2_activity", "Interactions"), ("cost_attribution", "Total cost"),
             ("pii_controls", "Interactions with PII"),
             ("control_failures", "Records with control failures"))

CSS = """
body{font-family:Helvetica,Arial,sans-serif;color:#1d232b;margin:0 auto;max-width:1100px;
padding:24px 32px;line-height:1.45}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;border-bottom:2px solid #1f5fa8;
padding-bottom:4px;margin-top:36px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#555;margin:0 0 14px}.intro{max-width:900px}
.verdict{padding:12px 16px;border-radius:6px;font-size:16px;margin:14px 0}
.v-ok{background:#e6f4ea;border-left:6px solid #2e8b57}
.v-attention{background:#fff4e0;border-left:6px solid #e07b22}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:10px}
.card{border:1px solid #d8dde3;border-radius:6px;padding:10px 12px;font-size:13px}
.c-ok{border-left:5px solid #2e8b57}.c-attention{border-left:5px solid #e07b22}
.c-not_available,.c-not_checked{border-left:5px solid #9aa3ad}.legend{font-size:12px;color:#444}
.card b{font-size:14px}.badge{display:inline-block;border-radius:10px;padding:1px 9px;
font-size:12px;font-weight:bold;margin-left:6px;white-space:nowrap}
.s-ok{background:#e6f4ea;color:#1e6b3c}.s-attention{background:#ffe7c2;color:#8a4b00}
.s-not_available,.s-not_checked{background:#eceff3;color:#555}
.heads{display:flex;gap:10px;flex-wrap:wrap;margin:14px 0}
.head{flex:1;min-width:180px;background:#f3f6fa;border-radius:6px;padding:10px 14px}
.head .n{font-size:24px;font-weight:bold}.head .l{font-size:12px;color:#555}
table{border-collapse:collapse;font-size:12px;margin:4px 0 10px}
th,td{border:1px solid #d8dde3;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f6fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.prov td:first-child{font-weight:bold;white-space:nowrap}
.figs{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0 10px}
.fig{background:#f3f6fa;border-radius:5px;padding:5px 10px;font-size:12px}
.fig b{font-size:14px}.note{color:#555;font-size:12px;font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:18px}
@media print{section{page-break-before:always}body{padding:0}}
"""


def format_html(report: Report) -> str:
    p = report.provenance
    verdict_class = "v-attention" if report.overall is Status.ATTENTION else "v-ok"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="sub">{escape(period_text(p.period))} &middot; generated '
        f"{p.generated_at:%Y-%m-%d %H:%M} UTC</p>",
        f'<p class="intro">{escape(INTRO)}</p>',
        f'<div class="verdict {verdict_class}"><b>Verdict.</b> '
        f"{escape(overall_text(report))}</div>",
        _headlines(report),
        '<h2 style="margin-top:18px">Areas checked</h2>',
        f'<p class="legend">{_badge(Status.OK)} the control held over the period '
        f"{_badge(Status.ATTENTION)} a finding to review (details in the numbered section) "
        f"{_badge(Status.NOT_AVAILABLE)} this store cannot answer yet; nothing is assumed</p>",
        '<div class="grid">',
        *[_card(i, s) for i, s in enumerate(report.sections, 1)],
        "</div>",
        '<h2>Provenance</h2><table class="prov">',
        *[f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>"
          for k, v in provenance_items(p)],
        "</table>",
        *[_section(i, s) for i, s in enumerate(report.sections, 1)],
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _headlines(report: Report) -> str:
    cells = []
    for key, label in HEADLINES:
        try:
            section = report.section(key)
        except KeyError:
            continue
        value = next((f.value for f in section.figures if f.label.startswith(label)), None)
        if value is None and section.figures:
            value = section.figures[0].value
        cells.append(f'<div class="head"><div class="n">{escape(value or "n/a")}</div>'
                     f'<div class="l">{escape(label)}</div></div>')
    return '<div class="heads">' + "".join(cells) + "</div>"


def _badge(status: Status) -> str:
    return f'<span class="badge s-{status.value}">{escape(status.label)}</span>'


def _card(number: int, section: Section) -> str:
    return (f'<div class="card c-{section.status.value}"><b>{number}. '
            f"{escape(section.title)}</b>"
            f"{_badge(section.status)}<br>{escape(section.summary)}</div>")


def _section(number: int, section: Section) -> str:
    parts = [f'<section id="{escape(section.key)}"><h2>{number}. {escape(section.title)} '
             f"{_badge(section.status)}</h2><p>{escape(section.summary)}</p>"]
    if section.figures:
        parts.append('<div class="figs">' + "".join(
            f'<div class="fig">{escape(f.label)}: <b>{escape(f.value)}</b></div>'
            for f in section.figures) + "</div>")
    if section.charts:
        parts.append('<div class="charts">' + "".join(render_chart(c) for c in section.charts)
                     + "</div>")
    parts += [_table(t) for t in section.tables]
    parts += [f'<p class="note">{escape(n)}</p>' for n in section.notes]
    parts.append("</section>")
    return "\n".join(parts)


def _table(table: Table) -> str:
    head = f"<h3>{escape(table.title)}</h3>"
    if not table.columns or not table.rows:
        text = table.caption if not table.columns else "(no rows)"
        return head + f'<p class="note">{escape(text or "(no data)")}</p>'
    rows = []
    for row in table.rows[:DISPLAY_ROWS]:
        cells = []
        for value, column in zip(row, table.columns, strict=True):
            numeric = (isinstance(value, int | float) and not isinstance(value, bool)) \
                or column == "cost"
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{escape(human(value, column))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    parts = [head, "<table><tr>" + "".join(f"<th>{escape(c)}</th>" for c in table.columns)
             + "</tr>", *rows, "</table>"]
    if len(table.rows) > DISPLAY_ROWS:
        parts.append(f'<p class="note">Showing {DISPLAY_ROWS:,} of {len(table.rows):,} rows; '
                     "the CSV and JSON formats hold all of them.</p>")
    if table.caption:
        parts.append(f'<p class="note">{escape(table.caption)}</p>')
    return "\n".join(parts)
