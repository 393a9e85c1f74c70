"""Every output format prints hostile field values inertly (issue 16, item 7).

Whoever sends spans chooses tool names, models, tenant ids and prompt text. Before this, a
tool name ``=cmd|...`` went unescaped into the report's CSV (a formula in a spreadsheet),
ANSI escapes reached the terminal through ``query`` and ``show``, and the Markdown report
printed raw ``<script>``. Checked with readers we did not write: the stdlib ``csv`` and
``json`` parsers, and ``html.parser`` for the HTML report.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from genai_audit.cli.formats import format_csv, format_json, format_table
from genai_audit.cli.show_cmd import format_json as show_json
from genai_audit.cli.show_cmd import format_records
from genai_audit.clickhouse.disclosure import DisclosedRecord, ReadState
from genai_audit.clickhouse.reports.model import (
    Figure,
    Period,
    Provenance,
    Report,
    Section,
    Status,
    Table,
)
from genai_audit.clickhouse.reports.render import (
    format_csv_bundle,
    format_html,
    format_markdown,
)
from genai_audit.clickhouse.reports.render import format_json as report_json
from genai_audit.neutralize import csv_cell, json_text, markdown_text, visible

FORMULA = "=cmd|' /C calc'!A0"
ANSI = "\x1b[2J\x1b[31mALL CLEAR\x1b[0m"
C1 = "\x9b31m"  # the 8-bit CSI some terminals obey
BIDI = "invoice\u202egpj.exe"
SCRIPT = "<script>alert(1)</script>"
IMAGE = "![x](http://127.0.0.1:1/track.png)"
HOSTILE = [FORMULA, ANSI, C1, BIDI, SCRIPT, IMAGE, "@SUM(1+1)", "+1", "-1", "\tx", "\rx"]
RAW_CONTROLS = ("\x1b", "\x9b", "\u202e", "\r")


def assert_no_raw_controls(text: str) -> None:
    for char in RAW_CONTROLS:
        assert char not in text, repr(char)


# ---- the module ----------------------------------------------------------------------

def test_visible_writes_controls_out_and_keeps_what_is_asked():
    assert visible(ANSI) == "\\x1b[2J\\x1b[31mALL CLEAR\\x1b[0m"
    assert visible(BIDI) == "invoice\\u202egpj.exe"
    assert visible("a\tb\nc\rd") == "a\tb\nc\\x0dd"
    assert visible("a\nb", keep="") == "a\\x0ab"


@pytest.mark.parametrize("value, cell", [
    (FORMULA, "'" + FORMULA), ("@SUM(1+1)", "'@SUM(1+1)"), ("+1", "'+1"), ("-1", "'-1"),
    ("\tx", "'\tx"), ("\rx", "\\x0dx"), ("plain", "plain"), (-1, -1), (Decimal("-2.5"),
                                                                          Decimal("-2.5")),
])
def test_csv_cell(value, cell):
    assert csv_cell(value) == cell


def test_json_text_is_lossless():
    text = json_text(HOSTILE)
    assert_no_raw_controls(text)
    assert json.loads(text) == HOSTILE


def test_markdown_text_keeps_code_spans():
    assert markdown_text("run `genai-audit verify` <now>") == "run `genai-audit verify` \\<now\\>"
    assert markdown_text("a|b\nc") == "a\\|b c"


# ---- query (and every command that prints rows through cli/formats.py) -----------------

COLUMNS = ["tool_name", "cost"]
ROWS = [(value, Decimal("-0.5")) for value in HOSTILE]


def test_query_table_shows_controls_instead_of_obeying_them():
    text = format_table(COLUMNS, ROWS)
    assert_no_raw_controls(text)
    assert "\\x1b[2J" in text and "\\u202e" in text


def test_query_table_neutralises_column_names_too():
    assert_no_raw_controls(format_table([ANSI], [(1,)]))
    assert_no_raw_controls(format_csv([ANSI], [(1,)]))


def test_query_csv_cells_read_as_text_in_a_spreadsheet():
    rows = list(csv.reader(io.StringIO(format_csv(COLUMNS, ROWS))))
    cells = [r[0] for r in rows[1:]]
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert cells[0] == "'" + FORMULA
    assert [r[1] for r in rows[1:]] == ["-0.5"] * len(HOSTILE)  # numbers stay numbers
    assert_no_raw_controls(format_csv(COLUMNS, ROWS))


def test_query_json_is_exact_and_inert():
    text = format_json(COLUMNS, ROWS)
    assert_no_raw_controls(text)
    assert [r["tool_name"] for r in json.loads(text)] == HOSTILE


# ---- show ------------------------------------------------------------------------------

def _disclosed() -> DisclosedRecord:
    return DisclosedRecord("7f0c0000-0000-4000-8000-000000000001", ANSI, BIDI,
                           datetime(2026, 7, 1, tzinfo=UTC), FORMULA, C1, "plaintext",
                           ReadState.DISCLOSED, prompt_text="hi\n" + ANSI,
                           response_text="ok\r" + SCRIPT, commitment_ok=True)


def test_show_text_shows_controls_instead_of_obeying_them():
    text = format_records([_disclosed()])
    assert_no_raw_controls(text)
    assert "\\x1b[2J" in text and "hi\n" in text  # line breaks of a prompt stay readable


def test_show_json_is_exact_and_inert():
    text = show_json([_disclosed()])
    assert_no_raw_controls(text)
    record = json.loads(text)[0]
    assert record["tenant_id"] == ANSI and record["response_text"] == "ok\r" + SCRIPT


# ---- report ----------------------------------------------------------------------------

def _report() -> Report:
    period = Period(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    section = Section(
        "cost_attribution", "Cost attribution", Status.OK, f"top tool {SCRIPT}",
        figures=[Figure("Top tool", ANSI)],
        tables=[Table("by_tool", "Cost by tool", ["tool_name", "cost", "day"],
                      [(value, Decimal("-0.5"), date(2026, 7, 2)) for value in HOSTILE])],
        notes=[f"see `genai-audit verify` for {SCRIPT}"])
    provenance = Provenance("chdb:///data", "genai_audit", FORMULA, period,
                            datetime(2026, 10, 2, 8, 0, tzinfo=UTC), 5, "0.1.0", "none",
                            BIDI)
    return Report("LLM audit report", provenance, [section])


def test_report_markdown_prints_no_markup_from_the_store():
    text = format_markdown(_report())
    assert_no_raw_controls(text)
    assert "<script>" not in text and "\\<script\\>" in text
    assert "![x]" not in text and "\\!\\[x\\]" in text
    assert "`genai-audit verify`" in text


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_html_prints_no_markup_from_the_store():
    text = format_html(_report())
    assert_no_raw_controls(text)
    parser = _Collector()
    parser.feed(text)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert any(SCRIPT in chunk for chunk in parser.text)  # shown, as text


def test_report_csv_cells_read_as_text_in_a_spreadsheet():
    with zipfile.ZipFile(io.BytesIO(format_csv_bundle(_report()))) as bundle:
        texts = {name: bundle.read(name).decode("utf-8") for name in bundle.namelist()}
    for text in texts.values():
        assert_no_raw_controls(text)
        for row in csv.reader(io.StringIO(text)):
            for cell in row:
                if (cell and cell[0] in "=+@\t\r") or (cell.startswith("-") and \
                        not cell.lstrip("-").replace(".", "").isdigit()):
                    pytest.fail(f"formula-like cell {cell!r}")
    rows = list(csv.reader(io.StringIO(texts["cost_attribution__by_tool.csv"])))
    assert rows[1][:2] == ["'" + FORMULA, "-0.5"]
    provenance = dict(csv.reader(io.StringIO(texts["provenance.csv"])))
    assert provenance["tenant"] == "'" + FORMULA


def test_report_json_is_exact_and_inert():
    text = report_json(_report())
    assert_no_raw_controls(text)
    doc = json.loads(text)
    assert [r[0] for r in doc["sections"][0]["tables"][0]["rows"]] == HOSTILE
    assert doc["provenance"]["tenant"] == FORMULA


# ---- errors and verify ------------------------------------------------------------------

def test_errors_and_verify_findings_show_controls(capsys):
    from genai_audit.cli.common import CommandError
    from genai_audit.cli.verify_cmd import format_result
    from genai_audit.clickhouse.ledger.verify import Finding, VerifyResult

    CommandError(f"query rejected: {ANSI}").show()
    err = capsys.readouterr().err
    assert_no_raw_controls(err)
    assert "\\x1b[2J" in err
    result = VerifyResult(findings=[Finding("modified", ANSI, 3, BIDI, detail=C1)])
    assert_no_raw_controls(format_result(result, 1.0))
