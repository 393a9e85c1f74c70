"""docs/deploy.md: its role SQL parses as ClickHouse SQL (chDB has no RBAC: EXPLAIN AST)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "deploy.md"


def test_writer_role_sql_parses(store):
    from genai_audit.clickhouse.rbac import WRITER, rbac_statements
    [block] = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    statements = [s.strip() for s in block.split(";") if s.strip()]
    writer = [s for s in rbac_statements("genai_audit")
              if s.endswith((f"TO {WRITER}", f"TO `{WRITER}`"))]
    assert writer and all(s in statements for s in writer), "deploy.md drifted from rbac.py"
    assert not any(re.search(r"\b(ALTER|DELETE|DROP|TRUNCATE|CREATE TABLE)\b", s)
                   for s in statements)
    for statement in statements:
        store.query("EXPLAIN AST " + statement)
