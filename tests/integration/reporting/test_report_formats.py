"""Every format rendered from demo-like rows, its numbers checked against what was inserted,
and the CLI's file, hash sidecar, progress and exit codes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from demo_data import PERIOD, SPECS

from genai_audit.cli.main import main
from genai_audit.clickhouse.reports import build_report
from genai_audit.clickhouse.reports.numbers import money
from genai_audit.clickhouse.reports.render import (
    format_csv_bundle,
    format_html,
    format_json,
    format_markdown,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOTAL_COST = sum((s.cost for s in SPECS), Decimal(0))
TOTAL_TOKENS = sum(s.prompt_tokens + s.response_tokens for s in SPECS)


@pytest.fixture(scope="module")
def report(shared_audit_store):
    return build_report(shared_audit_store, tenant=None, start=PERIOD[0], end=PERIOD[1], now=NOW)


def test_markdown(report):
    text = format_markdown(report)
    assert text.startswith("# LLM audit report: all tenants\n")
    assert "**Verdict:** Needs attention" in text
    assert f"- Interactions: **{len(SPECS)}**" in text
    assert f"- Tokens (prompt + response): **{TOTAL_TOKENS:,}**" in text
    assert f"- Cost: **{money(TOTAL_COST)}**" in text
    assert "| GDPR: erasure requests (Art. 17) | OK |" in text  # tables exist, none in period
    for section in report.sections:
        assert f". {section.title}\n" in text
    assert "- **Period:** 2024-03-01 00:00 UTC to 2024-05-01 00:00 UTC (end exclusive)" in text
    assert "@example.com" not in text  # no content, only metadata


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.external = [], set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href") or (value or "").startswith(("http:", "https:", "//")):
                if not (tag == "svg" and name == "xmlns"):
                    self.external.append((tag, name, value))
        if tag not in ("meta", "br", "rect", "line", "circle", "polyline"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ("rect", "line", "circle", "polyline") and (not self.stack
                                                               or self.stack[-1] != tag):
            return
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def test_html_is_self_contained_and_balanced(report):
    html = format_html(report)
    checker = _Checker()
    checker.feed(html)
    assert checker.stack == [] and checker.external == []
    assert "script" not in checker.tags and "svg" in checker.tags
    assert html.count("<svg") == sum(len(s.charts) for s in report.sections) >= 4
    assert f'<div class="n">{len(SPECS)}</div>' in html
    assert f'<div class="n">{money(TOTAL_COST)}</div>' in html
    assert "Verdict." in html and "Provenance" in html


def test_json_is_exact(report):
    doc = json.loads(format_json(report))
    assert doc["provenance"]["period"] == {"start": "2024-03-01T00:00:00+00:00",
                                           "end": "2024-05-01T00:00:00+00:00",
                                           "end_exclusive": True}
    assert doc["provenance"]["generated_at"] == NOW.isoformat()
    sections = {s["key"]: s for s in doc["sections"]}
    totals = next(t for t in sections["soc2_activity"]["tables"] if t["key"] == "soc2_totals")
    assert totals["rows"][0][0] == len(SPECS)
    assert Decimal(totals["rows"][0][4]) == TOTAL_COST  # decimals as exact strings
    activity = next(t for t in sections["soc2_activity"]["tables"]
                    if t["key"] == "soc2_activity")
    assert sum(Decimal(r[6]) for r in activity["rows"]) == TOTAL_COST
    assert sum(r[7] for r in activity["rows"]) == len(SPECS)
    assert sections["gdpr"]["status"] == "ok"


def test_csv_bundle_is_complete_and_deterministic(report):
    data = format_csv_bundle(report)
    assert data == format_csv_bundle(report)  # same report, same bytes, same hash
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = set(bundle.namelist())
        assert {"provenance.csv", "sections.csv", "figures.csv",
                "soc2_activity__soc2_activity.csv", "pii_controls__pii_entities.csv",
                "cost_attribution__cost_by_tool.csv",
                "control_failures__control_failures.csv"} <= names
        rows = list(csv.DictReader(io.StringIO(
            bundle.read("soc2_activity__soc2_activity.csv").decode())))
        by_tool = list(csv.DictReader(io.StringIO(
            bundle.read("cost_attribution__cost_by_tool.csv").decode())))
    assert sum(Decimal(r["cost"]) for r in rows) == TOTAL_COST
    assert sum(int(r["interactions"]) for r in rows) == len(SPECS)
    assert sum(Decimal(r["cost"]) for r in by_tool) == TOTAL_COST


@pytest.mark.parametrize("fmt", ["md", "html", "json", "csv"])
def test_cli_writes_file_and_sha256_sidecar(shared_audit_store, store_dsn, tmp_path, capsys, fmt):
    out = tmp_path / f"report.{fmt}"
    argv = ["report", "--dsn", store_dsn, "--database", shared_audit_store.database, "--from",
            "2024-03-01", "--to", "2024-04-30", "--format", fmt, "--out", str(out)]
    assert main(argv) == 0
    data = out.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert (tmp_path / f"report.{fmt}.sha256").read_text() == f"{digest}  report.{fmt}\n"
    err = capsys.readouterr().err
    assert f"sha256 {digest}" in err and "Building report" in err
    if fmt == "json":
        doc = json.loads(data)
        assert doc["provenance"]["period"]["end"] == "2024-05-01T00:00:00+00:00"  # --to inclusive
        assert doc["provenance"]["store"] == store_dsn


def test_cli_stdout_tenant_and_exit_codes(shared_audit_store, store_dsn, capsys):
    base = ["report", "--dsn", store_dsn, "--database", shared_audit_store.database,
            "--from", "2024-03-01", "--to", "2024-04-30"]
    assert main([*base, "--tenant", "globex", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["title"] == "LLM audit report: tenant globex"
    assert main([*base, "--fail-on-findings"]) == 1  # the demo data has findings
    capsys.readouterr()
    assert main(["report", "--dsn", store_dsn, "--database", shared_audit_store.database,
                 "--from", "2024-05-01", "--to", "2024-04-01"]) == 2
    assert "must be after --from" in capsys.readouterr().err
    assert main([*base[:-2], "--to", "last tuesday"]) == 2
    assert "not a date" in capsys.readouterr().err


def test_cli_on_a_store_without_schema_says_so(store_dsn, capsys):
    assert main(["report", "--dsn", store_dsn, "--database", "never_initialised"]) == 2
    assert "create it with `genai-audit init`" in capsys.readouterr().err
