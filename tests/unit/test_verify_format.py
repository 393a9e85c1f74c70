"""``genai-audit verify``'s output: every finding names its table; counts per table."""

from __future__ import annotations

import json

from genai_audit.cli.verify_cmd import format_json, format_result
from genai_audit.clickhouse.ledger.verify import Finding, TableCount, VerifyResult


def _result() -> VerifyResult:
    return VerifyResult(
        logs=3, records=12, checkpoints=4,
        findings=[Finding("deleted", "subject_erasures/acme/w1", 1, "9c41", "signed record is "
                          "missing", table="subject_erasures"),
                  Finding("inserted", "", None, "77aa", "record belongs to no log",
                          table="access_log")],
        warnings=[Finding("legacy", "", None, "0b0b", "written before the ledger",
                          table="access_log")],
        tables={"interactions": TableCount(1, 10, 2), "subject_erasures": TableCount(1, 1, 1),
                "access_log": TableCount(1, 1, 1)})


def test_text_names_the_table_of_every_finding_and_counts_per_table() -> None:
    lines = format_result(_result(), 2.0).splitlines()
    assert lines[0].startswith("TAMPERED: 12 records in 3 logs, 4 checkpoints checked in 2.00s")
    assert [line.split()[:2] for line in lines[1:4]] == [
        ["interactions", "10"], ["subject_erasures", "1"], ["access_log", "1"]]
    assert lines[4].split()[:3] == ["DELETED", "subject_erasures", "subject_erasures/acme/w1"]
    assert "position 1" in lines[4] and "record 9c41" in lines[4]
    assert lines[5].split()[:3] == ["INSERTED", "access_log", "(no"]
    assert lines[6].startswith("warning: LEGACY") and "access_log" in lines[6]


def test_json_carries_tables_and_each_findings_table() -> None:
    data = json.loads(format_json(_result(), 2.0))
    assert data["intact"] is False
    assert data["tables"]["interactions"] == {"records": 10, "logs": 1, "checkpoints": 2}
    assert [f["table"] for f in data["findings"]] == ["subject_erasures", "access_log"]
    assert data["warnings"][0]["kind"] == "legacy"
