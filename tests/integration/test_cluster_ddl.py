"""`init --cluster NAME` (issue 23): every statement of every migration, rewritten ON
CLUSTER with replicated engines, is parsed by the engine itself. No ClickHouse cluster can
run here, so parsing (EXPLAIN AST) is the check; the plain form also runs as before."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from genai_audit.cli.main import cli
from genai_audit.clickhouse.cluster import for_cluster
from genai_audit.clickhouse.errors import MigrationError
from genai_audit.clickhouse.migrate import BOOTSTRAP, available_migrations, cluster_statements

pytestmark = pytest.mark.integration


def _all_cluster_statements(db: str) -> list[str]:
    out = for_cluster(BOOTSTRAP, "audit", db)
    for migration in available_migrations():
        out += cluster_statements(migration, "audit", db)
    return out


def test_every_cluster_statement_parses(store):
    statements = _all_cluster_statements(store.database)
    assert len(statements) > 40
    for statement in statements:
        store.rows("EXPLAIN AST " + statement)  # raises on a syntax error


def test_every_table_is_replicated_with_a_distributed_companion(store):
    statements = _all_cluster_statements(store.database)
    creates = [s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS")]
    local = [s for s in creates if "ENGINE = Distributed" not in s]
    assert local and all(re.search(r"\sON CLUSTER audit\b", s) for s in statements if
                         not s.startswith(("SELECT", "INSERT")))
    for statement in local:
        table = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement).group(1)
        assert re.search(r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/"
                         r"\{database\}/\{table\}', '\{replica\}'", statement), table
        assert "non_replicated_deduplication_window" not in statement
        assert any(s.startswith(f"CREATE TABLE IF NOT EXISTS {table}_all ON CLUSTER audit AS "
                                f"{store.database}.{table} ENGINE = Distributed(audit,")
                   for s in creates), table
    interactions = next(s for s in local if "EXISTS interactions ON" in s)
    assert "TTL toDateTime(event_timestamp)" in interactions  # TTL replicates with the table
    assert "replicated_deduplication_window = 10000" in interactions
    assert any(s.startswith("ALTER TABLE interactions_all ON CLUSTER audit ADD COLUMN IF NOT "
                            "EXISTS log_id LowCardinality(String)") for s in statements)


def test_an_unknown_statement_shape_is_refused_not_passed_through():
    with pytest.raises(MigrationError, match="unknown statement shape"):
        for_cluster("TRUNCATE TABLE interactions", "audit", "genai_audit")
    with pytest.raises(MigrationError, match="no MergeTree engine"):
        for_cluster("CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = Log", "audit", "db")


def test_init_print_sql_needs_no_store(tmp_path):
    result = CliRunner().invoke(cli, ["init", "--cluster", "audit", "--print-sql", "--dsn",
                                      str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert "ENGINE = ReplicatedMergeTree(" in result.output
    assert "CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER audit" in result.output
    assert not (tmp_path / "none").exists()
    bad = CliRunner().invoke(cli, ["init", "--cluster", "a;DROP", "--print-sql"])
    assert bad.exit_code != 0
