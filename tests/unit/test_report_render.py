"""Pure parts of the report: number formatting, date bounds, escaping, page one."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import click
import pytest

from genai_audit.cli.report_cmd import parse_bound
from genai_audit.clickhouse.reports import numbers
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
from genai_audit.clickhouse.reports.render import format_html, format_json, format_markdown
from genai_audit.clickhouse.reports.render.svg import render_chart

EVIL = "<script>alert(1)</script>|x"


def _report(status: Status = Status.OK) -> Report:
    period = Period(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    section = Section(
        "soc2_activity", "SOC2 activity", status, f"tenant {EVIL} did things",
        figures=[Figure("Interactions", "3")],
        tables=[Table("t", "Rows", ["tool_name", "cost", "day"],
                      [(EVIL, Decimal("0.0042"), date(2026, 7, 2))] * 150)],
        charts=[Chart("c", "By tool", "bar", [EVIL], {"cost": [1.0]}, unit="$"),
                Chart("d", "Per day", "line", ["2026-07-01", "2026-07-02"],
                      {"n": [1.0, 3.0]})])
    provenance = Provenance("http://auditor:***@ch:8123", "genai_audit", EVIL, period,
                            datetime(2026, 10, 2, 8, 0, tzinfo=UTC), 5, "0.1.0",
                            "none", "not run")
    return Report("LLM audit report: tenant x", provenance, [section])


@pytest.mark.parametrize("value, text", [
    (Decimal("1234.567"), "$1,234.57"), (Decimal("0.0457"), "$0.0457"),
    (Decimal("0.000125"), "$0.000125"), (0, "$0.00"), (None, "$0.00"),
])
def test_money(value, text):
    assert numbers.money(value) == text


def test_share_change_things():
    assert numbers.share(1, 3) == "33.3%" and numbers.share(1, 0) == "n/a"
    assert numbers.change(Decimal(12), Decimal(10)) == "+20.0%"
    assert numbers.change(Decimal(5), 0) == "new" and numbers.change(0, 0) == "n/a"
    assert numbers.things(1, "call") == "1 call" and numbers.things(1200, "call") == "1,200 calls"


def test_parse_bound():
    assert parse_bound("2026-09-30", end=True) == datetime(2026, 10, 1, tzinfo=UTC)
    assert parse_bound("2026-09-30", end=False) == datetime(2026, 9, 30, tzinfo=UTC)
    assert parse_bound("2026-09-30T12:30", end=True) == datetime(2026, 9, 30, 12, 30,
                                                                 tzinfo=UTC)
    assert parse_bound("2026-09-30T12:30+02:00", end=False) == datetime(2026, 9, 30, 10, 30,
                                                                       tzinfo=UTC)
    with pytest.raises(click.BadParameter):
        parse_bound("30/09/2026", end=False)


def test_period_rejects_naive_and_empty():
    with pytest.raises(ValueError, match="timezone"):
        Period(datetime(2026, 1, 1), datetime(2026, 2, 1))
    with pytest.raises(ValueError, match="empty"):
        Period(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


def test_html_escapes_everything_from_the_store():
    html = format_html(_report())
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Showing 100 of 150 rows" in html
    assert html.count("<svg") == 2


def test_markdown_escapes_pipes_and_caps_rows():
    text = format_markdown(_report(Status.ATTENTION))
    assert "\\|x" in text and "Showing 100 of 150 rows" in text
    assert "**Verdict:** Needs attention: 1 of 1 areas" in text


def test_json_keeps_every_row_exact():
    doc = json.loads(format_json(_report()))
    rows = doc["sections"][0]["tables"][0]["rows"]
    assert len(rows) == 150 and rows[0] == [EVIL, "0.0042", "2026-07-02"]
    assert doc["provenance"]["store"] == "http://auditor:***@ch:8123"


def test_svg_charts_escape_labels_and_handle_zero():
    svg = render_chart(Chart("z", "Zero", "bar", ["a<b"], {"v": [0.0]}))
    assert "a&lt;b" in svg and "<rect" in svg
    line = render_chart(Chart("one", "One point", "line", ["d"], {"v": [0.0]}))
    assert "<polyline" in line


def test_capped_table_says_what_it_leaves_out():
    report = _report()
    report.sections[0].tables.append(Table("s", "Sample", ["id"], [("a",), ("b",)],
                                           total_rows=40))
    assert "Showing 2 of 40." in format_markdown(report)
    assert "Showing 2 of 40." in format_html(report)
