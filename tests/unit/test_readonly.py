from __future__ import annotations

import pytest

from genai_audit.clickhouse.errors import QueryRejected
from genai_audit.clickhouse.readonly import check_read_only, split_statements


def test_split_respects_quotes_and_comments():
    assert split_statements("SELECT ';' -- x;\n; ") == ["SELECT ';'"]
    assert split_statements("SELECT 1; DROP TABLE t") == ["SELECT 1", "DROP TABLE t"]
    assert split_statements("SELECT `a;b`, 'it''s;' /* ; */") == ["SELECT `a;b`, 'it''s;'"]
    with pytest.raises(QueryRejected, match="unterminated"):
        split_statements("SELECT 'oops")


@pytest.mark.integration
def test_only_single_selects_pass(store):
    assert check_read_only(store, "WITH 1 AS x SELECT x;") == "WITH 1 AS x SELECT x"
    assert check_read_only(store, "SELECT count() FROM llm_interaction_audit")
    for sql, why in [("INSERT INTO interactions (tenant_id) VALUES ('x')", "InsertQuery"),
                     ("DROP TABLE interactions", "DropQuery"),
                     ("SELECT 1; DROP TABLE interactions", "one statement"),
                     ("ALTER TABLE interactions DELETE WHERE 1", "Alter"),
                     ("SELEC 1", "not a valid query"), ("  ;  ", "empty")]:
        with pytest.raises(QueryRejected, match=why):
            check_read_only(store, sql)
    assert store.scalar("SELECT count() FROM system.tables WHERE database = currentDatabase() "
                        "AND name = 'interactions'") == 1
