from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from genai_audit.cli.formats import format_csv, format_json, format_table

COLS = ["tenant", "cost", "at", "flags"]
ROWS = [("acme", Decimal("0.000001000"), datetime(2026, 1, 2, tzinfo=UTC), ["a"]),
        ("globex\nx", Decimal("12.5"), datetime(2026, 1, 3, tzinfo=UTC), [])]


def test_table_aligns_and_counts():
    text = format_table(COLS, ROWS)
    lines = text.splitlines()
    assert lines[0].split() == COLS
    assert "globex\\nx" in text and lines[-1] == "(2 rows)"
    assert len({len(line) for line in lines[:4]}) == 1


def test_csv_and_json_keep_exact_decimals():
    csv_text = format_csv(COLS, ROWS)
    assert csv_text.splitlines()[1].startswith("acme,0.000001000,2026-01-02T00:00:00+00:00")
    data = json.loads(format_json(COLS, ROWS))
    assert data[0] == {"tenant": "acme", "cost": "0.000001000",
                       "at": "2026-01-02T00:00:00+00:00", "flags": ["a"]}
