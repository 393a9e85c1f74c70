"""`genai-audit rbac`: the SQL parses (chDB has no working RBAC, so EXPLAIN AST) and is least
privilege by construction."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from genai_audit.cli.main import cli
from genai_audit.clickhouse.errors import ConfigError
from genai_audit.clickhouse.rbac import CONTENT_COLUMNS, rbac_statements

pytestmark = pytest.mark.integration

AST_KIND = {"CREATE ROLE": "CreateRoleQuery", "GRANT": "GrantQuery",
            "CREATE ROW POLICY": "CREATE ROW POLICY"}


@pytest.mark.parametrize("tenants", [(), ("acme", "globex-legal", "initech.hr")])
def test_every_statement_parses(store, tenants):
    statements = rbac_statements(store.database, tenants)
    for statement in statements:
        kind = next(k for k in AST_KIND if statement.startswith(k))
        ast = store.rows("EXPLAIN AST " + statement)
        assert str(ast[0][0]).startswith(AST_KIND[kind]), statement


def test_roles_are_least_privilege():
    statements = rbac_statements("audit", ["acme"])
    writer = [s for s in statements if s.endswith("TO genai_audit_writer")]
    assert writer == [
        "GRANT INSERT ON `audit`.`interactions` TO genai_audit_writer",
        "GRANT INSERT ON `audit`.`ledger_checkpoints` TO genai_audit_writer",
        "GRANT SELECT ON `audit`.`schema_migrations` TO genai_audit_writer",
        "GRANT SELECT ON `audit`.`retention_policies` TO genai_audit_writer",
        "GRANT SELECT(`id`, `tenant_id`, `event_timestamp`) ON `audit`.`interactions` "
        "TO genai_audit_writer"]
    [columns] = [s for s in statements if s.startswith("GRANT SELECT(`id`, `event_timestamp`")]
    assert "`tenant_id`" in columns and "`total_cost`" in columns and "`leaf_hash`" in columns
    assert not any(f"`{c}`" in columns for c in CONTENT_COLUMNS)  # no ciphertext for auditors
    whole = [s for s in statements if s.startswith("GRANT SELECT ON `audit`.`interactions`")]
    assert whole == ["GRANT SELECT ON `audit`.`interactions` TO genai_audit_verifier"]
    verifier = [s for s in statements if s.startswith("GRANT") and "verifier" in s]
    assert sorted(s.split(" ON ")[0] for s in verifier) == ["GRANT INSERT", "GRANT READ",
                                                             "GRANT READ"] + ["GRANT SELECT"] * 5
    assert "GRANT INSERT ON `audit`.`archive_runs` TO genai_audit_verifier" in verifier
    admin = next(s for s in statements if s.endswith("TO genai_audit_admin"))
    for forbidden in ("ALTER UPDATE", "ALTER DELETE", "TRUNCATE", "DROP TABLE", "ALL"):
        assert forbidden not in admin
    policies = [s for s in statements if "ROW POLICY" in s and "acme" in s]
    assert len(policies) == 5 and all("USING tenant_id = 'acme'" in p for p in policies)
    assert not any("auditor_all" in s for s in statements)  # no cross-tenant role asked for


@pytest.mark.parametrize("tenant", ["acme' OR 1=1 --", "a`b", "", "x" * 65, "acme corp"])
def test_hostile_tenants_are_refused(tenant):
    with pytest.raises(ConfigError, match="invalid tenant"):
        rbac_statements("audit", [tenant])


def test_cli_prints_reviewable_sql():
    result = CliRunner().invoke(cli, ["rbac", "--tenant", "acme", "--database", "audit"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("-- genai-audit roles for database audit")
    statements = [line for line in result.output.splitlines()
                  if line.endswith(";") and not line.startswith("--")]
    assert len(statements) == len(rbac_statements("audit", ["acme"]))
    bad = CliRunner().invoke(cli, ["rbac", "--tenant", "x'y"])
    assert bad.exit_code == 2 and "invalid tenant" in bad.output
