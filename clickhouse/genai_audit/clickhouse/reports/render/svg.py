"""Inline SVG charts for the HTML report: no scripts, no fonts, no network.

``bar_chart`` draws horizontal bars (categories with long names stay readable);
``line_chart`` draws one or more series over time buckets. Labels are XML-escaped
(``genai_audit.neutralize.html_text``).
"""

from __future__ import annotations

from genai_audit.clickhouse.reports.model import Chart
from genai_audit.neutralize import html_text as escape

PALETTE = ("#1f5fa8", "#e07b22", "#2e8b57", "#b03a48", "#6f4fa8", "#7a7a7a")
WIDTH = 560


def render_chart(chart: Chart) -> str:
    return bar_chart(chart) if chart.kind == "bar" else line_chart(chart)


def _value_text(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.6f}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def bar_chart(chart: Chart) -> str:
    values = next(iter(chart.series.values()), [])
    row, label_w, left = 22, 170, 180
    height = row * len(values) + 30
    top = max(values, default=0.0) or 1.0
    parts = [_open(chart, height)]
    for i, (label, value) in enumerate(zip(chart.labels, values, strict=True)):
        y = 24 + i * row
        bar = max(0.0, (WIDTH - left - 90) * value / top)
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f'<text x="{label_w}" y="{y + 13}" text-anchor="end" font-size="12">'
            f"{escape(short)}</text>"
            f'<rect x="{left}" y="{y}" width="{bar:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: '
            f"{escape(_value_text(value, chart.unit))}</title></rect>"
            f'<text x="{left + bar + 6:.1f}" y="{y + 13}" font-size="12">'
            f"{escape(_value_text(value, chart.unit))}</text>")
    parts.append("</svg>")
    return "".join(parts)


def line_chart(chart: Chart) -> str:
    height, left, right, top_pad, bottom = 220, 70, 16, 28, 40
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    n = len(chart.labels)
    top = max((v for s in chart.series.values() for v in s), default=0.0) or 1.0
    parts = [_open(chart, height)]
    for frac in (0.0, 0.5, 1.0):  # gridlines with values
        y = top_pad + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{escape(_value_text(top * frac, chart.unit))}</text>')

    def x_at(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    for first, last in chart.gaps:  # days without records: shaded, never drawn as a trend
        x0, x1 = x_at(max(first - 1, 0)), x_at(min(last + 1, n - 1))
        parts.append(f'<rect class="gap" x="{x0:.1f}" y="{top_pad}" width="{x1 - x0:.1f}" '
                     f'height="{plot_h}" fill="#f3d6d6"><title>no records '
                     f"{escape(chart.labels[first])} to {escape(chart.labels[last])}"
                     "</title></rect>")

    for color, (name, values) in zip(PALETTE, chart.series.items(), strict=False):
        points = " ".join(f"{x_at(i):.1f},{top_pad + plot_h * (1 - v / top):.1f}"
                          for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{points}"><title>{escape(name)}</title></polyline>')
        if n <= 40:
            parts += [f'<circle cx="{x_at(i):.1f}" cy="{top_pad + plot_h * (1 - v / top):.1f}" '
                      f'r="2.5" fill="{color}"><title>{escape(chart.labels[i])}: '
                      f"{escape(_value_text(v, chart.unit))}</title></circle>"
                      for i, v in enumerate(values)]
    step = max(1, (n + 5) // 6)  # at most ~6 date labels
    for i in range(0, n, step):
        parts.append(f'<text x="{x_at(i):.1f}" y="{height - bottom + 16}" font-size="11" '
                     f'text-anchor="middle">{escape(chart.labels[i])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _open(chart: Chart, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" '
            f'height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'font-family="Helvetica, Arial, sans-serif" aria-label="{escape(chart.title)}">'
            f'<text x="0" y="14" font-size="13" font-weight="bold">{escape(chart.title)}</text>')
