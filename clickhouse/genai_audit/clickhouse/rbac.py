"""Least-privilege ClickHouse roles for the audit database, as SQL to review and apply.

* ``genai_audit_writer``: the exporter and the gateway. INSERT on the tables records go
  to (``interactions``, ``ledger_checkpoints``), SELECT on ``schema_migrations`` (to check
  the schema is current) and ``retention_policies`` (to stamp each record's retention), and
  SELECT on the three ``interactions`` columns a replayed batch is checked against (id,
  tenant, time). It cannot read content, update, delete, alter or drop anything.
* ``genai_audit_auditor``: SELECT on the views and audit tables (the signed checkpoints
  included), and column-level SELECT on ``interactions`` *without* the ciphertext columns.
  It sees rows only through a row policy: ``genai_audit_auditor_<tenant>`` (one tenant) or
  ``genai_audit_auditor_all``.
* ``genai_audit_verifier``: runs ``verify``, ``prove`` and ``archive verify``: SELECT on
  ``interactions`` (all columns: a leaf covers the ciphertext, which it hashes and cannot
  decrypt, keys living outside ClickHouse) and on the ledger and audit tables, every
  tenant's rows; READ on the S3 and FILE sources (archived Parquet); INSERT on
  ``archive_runs`` (a verification is recorded). Nothing else.
* ``genai_audit_admin``: runs ``init`` (migrations), ``erase``, ``show`` and reports. It can
  create tables and views and insert, but has no ALTER UPDATE/DELETE, TRUNCATE or DROP
  TABLE: the trail stays append-only even for its administrators.

Identifiers are validated and tenant names restricted to ``[A-Za-z0-9_.-]``, so the SQL is
safe to paste. ClickHouse row policies are restrictive by default: once any policy exists
on a table, a user without a matching policy sees no rows of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from genai_audit.clickhouse.dsn import validate_identifier
from genai_audit.clickhouse.errors import ConfigError
from genai_audit.clickhouse.ledger.leaf import INTERACTIONS
from genai_audit.clickhouse.writer import COLUMNS

WRITER, AUDITOR, ADMIN = "genai_audit_writer", "genai_audit_auditor", "genai_audit_admin"
VERIFIER = "genai_audit_verifier"
AUDITOR_ALL = "genai_audit_auditor_all"

# What the pipeline inserts into: records and the ledger's signed checkpoints.
WRITER_INSERT_TABLES = ("interactions", "ledger_checkpoints")
WRITER_SELECT_TABLES = ("schema_migrations", "retention_policies")  # schema check, policies
WRITER_REPLAY_COLUMNS = ("id", "tenant_id", "event_timestamp")  # exporter/dedup.py
CONTENT_COLUMNS = ("full_prompt_text", "full_response_text", "response_preview")
METADATA_COLUMNS = (*(c for c in COLUMNS if c not in CONTENT_COLUMNS), "ingested_at",
                    *INTERACTIONS.ledger_columns)
AUDITOR_VIEWS = ("llm_interaction_audit", "audit_daily_activity", "audit_pii_interactions",
                 "audit_cost_monthly", "audit_control_failures", "audit_phi_interactions")
AUDITOR_TABLES = ("subject_erasures", "access_log", "schema_migrations", "retention_policies",
                  "legal_holds", "archive_runs", "ledger_checkpoints")
VERIFIER_TABLES = ("interactions", "ledger_checkpoints", "subject_erasures", "access_log",
                   "archive_runs")
TENANT_TABLES = ("interactions", "subject_erasures", "access_log", "legal_holds",
                 "ledger_checkpoints")  # row policies
ADMIN_PRIVILEGES = ("SELECT", "INSERT", "SHOW TABLES", "CREATE TABLE", "CREATE VIEW",
                    "DROP VIEW", "ALTER ADD COLUMN", "ALTER MODIFY COLUMN", "ALTER ADD INDEX",
                    "ALTER ADD PROJECTION", "ALTER MODIFY SETTING")
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def quote_identifier(name: str) -> str:
    if "`" in name or "\\" in name:
        raise ConfigError(f"invalid identifier {name!r}")
    return f"`{name}`"


def quote_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def validate_tenant(tenant: str) -> str:
    if not _TENANT.match(tenant):
        raise ConfigError(f"invalid tenant {tenant!r} for a role name: 1-64 characters of "
                          "letters, digits and _ . -")
    return tenant


def tenant_role(tenant: str) -> str:
    return f"{AUDITOR}_{validate_tenant(tenant)}"


def rbac_statements(database: str, tenants: Iterable[str] = ()) -> list[str]:
    """The statements, in order. Without tenants: one cross-tenant auditor role."""
    db = quote_identifier(validate_identifier(database))
    tenant_list = [validate_tenant(t) for t in dict.fromkeys(tenants)]
    out = [f"CREATE ROLE IF NOT EXISTS {quote_identifier(r)}"
           for r in (WRITER, AUDITOR, VERIFIER, ADMIN)]
    out += [f"GRANT INSERT ON {db}.{quote_identifier(t)} TO {WRITER}"
            for t in WRITER_INSERT_TABLES]
    out += [f"GRANT SELECT ON {db}.{quote_identifier(t)} TO {WRITER}"
            for t in WRITER_SELECT_TABLES]
    replay = ", ".join(quote_identifier(c) for c in WRITER_REPLAY_COLUMNS)
    out.append(f"GRANT SELECT({replay}) ON {db}.`interactions` TO {WRITER}")
    out += [f"GRANT SELECT ON {db}.{quote_identifier(t)} TO {VERIFIER}"
            for t in VERIFIER_TABLES]
    out.append(f"GRANT INSERT ON {db}.`archive_runs` TO {VERIFIER}")  # verify runs recorded
    out.append(f"GRANT READ ON S3 TO {VERIFIER}")  # archived Parquet (ClickHouse 25.x+ sources)
    out.append(f"GRANT READ ON FILE TO {VERIFIER}")
    columns = ", ".join(quote_identifier(c) for c in METADATA_COLUMNS)
    out.append(f"GRANT SELECT({columns}) ON {db}.`interactions` TO {AUDITOR}")
    out += [f"GRANT SELECT ON {db}.{quote_identifier(t)} TO {AUDITOR}"
            for t in AUDITOR_VIEWS + AUDITOR_TABLES]
    out.append(f"GRANT {', '.join(ADMIN_PRIVILEGES)} ON {db}.* TO {ADMIN}")
    readers: list[tuple[str, str]] = [(ADMIN, "1"), (VERIFIER, "1")]
    if tenant_list:
        for tenant in tenant_list:
            role = quote_identifier(tenant_role(tenant))
            out.append(f"CREATE ROLE IF NOT EXISTS {role}")
            out.append(f"GRANT {AUDITOR} TO {role}")
            readers.append((tenant_role(tenant), f"tenant_id = {quote_literal(tenant)}"))
    else:
        out.append(f"CREATE ROLE IF NOT EXISTS {AUDITOR_ALL}")
        out.append(f"GRANT {AUDITOR} TO {AUDITOR_ALL}")
        readers.append((AUDITOR_ALL, "1"))
    for table in TENANT_TABLES:
        for role, condition in readers:
            out.append(_row_policy(db, table, role, condition))
    out.append(_row_policy(db, "interactions", WRITER, "1"))  # replay checks, 3 columns
    return out


def _row_policy(db: str, table: str, role: str, condition: str) -> str:
    policy = quote_identifier(f"{role}_rows")
    return (f"CREATE ROW POLICY IF NOT EXISTS {policy} ON {db}.{quote_identifier(table)}"
            f" FOR SELECT USING {condition} TO {quote_identifier(role)}")


def format_rbac(database: str, tenants: Iterable[str] = ()) -> str:
    tenant_list = list(tenants)
    head = [
        f"-- genai-audit roles for database {database}: review, then apply as a ClickHouse",
        "-- administrator (clickhouse-client --multiquery < roles.sql).",
        f"-- Then: GRANT {WRITER} TO <exporter/gateway user>;",
        f"--       GRANT {VERIFIER} TO <user running verify and prove>;",
        f"--       GRANT {tenant_role(tenant_list[0]) if tenant_list else AUDITOR_ALL}"
        " TO <auditor user>;",
        f"--       GRANT {ADMIN} TO <operator running init, erase, show>;",
    ]
    body = [statement + ";" for statement in rbac_statements(database, tenant_list)]
    return "\n".join(head + body) + "\n"
