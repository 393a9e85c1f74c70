"""The report over the real demo's store (`genai-audit demo` in a child process), checked
against the same store read back with `genai-audit query`."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genai_audit.cli.main", *args],
                          capture_output=True, text=True, timeout=240)


def test_report_matches_the_demo_rows(tmp_path):
    data = str(tmp_path / "demo-data")
    demo = _cli("demo", "--dsn", data)
    assert demo.returncode == 0, demo.stderr[-2000:]
    out = tmp_path / "report.json"
    report = _cli("report", "--dsn", data, "--from", "2000-01-01", "--format", "json",
                  "--out", str(out))
    assert report.returncode == 0, report.stderr[-2000:]
    doc = json.loads(out.read_text())
    truth = _cli("query", "--dsn", data, "--format", "json",
                 "SELECT count() AS n, toString(sum(total_cost)) AS cost, "
                 "uniqExact(tenant_id) AS tenants, countIf(tenant_id = '_unattributed') AS orphans, "
                 "countIf(has(flags, 'unknown_model')) AS unpriced FROM interactions")
    assert truth.returncode == 0, truth.stderr[-2000:]
    (row,) = json.loads(truth.stdout)
    sections = {s["key"]: s for s in doc["sections"]}
    totals = next(t for t in sections["soc2_activity"]["tables"] if t["key"] == "soc2_totals")
    assert totals["rows"][0][0] == row["n"] > 0
    assert Decimal(totals["rows"][0][4]) == Decimal(row["cost"])
    figures = {f["label"]: f["value"] for s in doc["sections"] for f in s["figures"]}
    assert figures["Tenants"] == row["tenants"]  # numbers are JSON numbers, not strings
    assert figures["Unattributed spans"] == row["orphans"]
    assert figures["Calls without a price"] == row["unpriced"]
    assert (tmp_path / "report.json.sha256").read_text().endswith("  report.json\n")
