"""Commands never answer a typo with a clean result (issue 17): a read pointed at a store or
database that does not exist is exit 2 and creates nothing; a tenant the store has never
seen is exit 2 naming the tenants it does know; writes for a new tenant need --new-tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_records import write_records

from genai_audit.cli.main import main

pytestmark = pytest.mark.integration

READS = [
    ["query", "SELECT 1"],
    ["report", "--format", "json"],
    ["verify"],
    ["disclosures", "--tenant", "acme"],
    ["retention", "status"],
    ["hold", "list"],
]


@pytest.mark.parametrize("argv", READS, ids=lambda a: " ".join(a[:2]))
def test_a_read_with_a_mistyped_store_path_is_an_error_and_creates_nothing(
        argv, tmp_path: Path, capsys):
    typo = tmp_path / "genai-audit-dtaa"
    assert main([*argv, "--dsn", str(typo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(("genai-audit: error: no store at",  # verify looks for the keys first
                           "genai-audit: error: no keystore at")) and str(typo) in err
    assert not typo.exists()


@pytest.mark.parametrize("argv", READS, ids=lambda a: " ".join(a[:2]))
def test_a_read_with_a_mistyped_database_is_an_error(argv, store_dsn, keys_env, capsys):
    db = f"typo_{uuid.uuid4().hex[:8]}"
    assert main([*argv, "--dsn", store_dsn, "--database", db]) == 2
    assert f"no database {db}" in capsys.readouterr().err
    assert main(["query", "--dsn", store_dsn, "--format", "json",
                 f"SELECT count() AS n FROM system.databases WHERE name = '{db}'"]) in (0, 2)
    out = capsys.readouterr().out
    assert '"n": 0' in out or out == ""  # the default database may not exist either


@pytest.fixture
def keys_env(keystore, tmp_path: Path, monkeypatch):
    """The CLI finds the test's keystore (verify reads its public key first)."""
    keystore.signing_key()  # create the ledger key
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(tmp_path / "keys"))
    return keystore


@pytest.fixture
def seeded(store, keys_env, make_span):
    keystore = keys_env
    write_records(store, keystore, make_span, datetime.now(UTC), tenant__id="acme")
    return store


@pytest.mark.parametrize("argv", [
    ["verify", "--tenant", "acmee"],
    ["report", "--tenant", "acmee", "--format", "json"],
    ["retention", "status", "--tenant", "acmee"],
    ["retention", "show", "--tenant", "acmee"],
    ["retention", "set", "--tenant", "acmee", "--days", "30", "--reason", "r"],
    ["hold", "add", "--tenant", "acmee", "--reason", "case 1"],
], ids=lambda a: " ".join(a[:2]))
def test_an_unknown_tenant_is_an_error_naming_the_known_ones(argv, seeded, store_dsn, capsys):
    assert main([*argv, "--dsn", store_dsn, "--database", seeded.database]) == 2
    err = capsys.readouterr().err
    assert "unknown tenant 'acmee'" in err and "known tenants: acme" in err
    assert seeded.scalar("SELECT count() FROM retention_policies") == 0
    assert seeded.scalar("SELECT count() FROM legal_holds") == 0


def test_a_new_tenant_is_accepted_when_said_so(seeded, store_dsn, capsys):
    base = ["--dsn", store_dsn, "--database", seeded.database]
    assert main(["retention", "set", "--tenant", "newco", "--days", "30", "--reason", "onboarding",
                 "--new-tenant", *base]) == 0
    assert main(["hold", "add", "--tenant", "newco2", "--reason", "case 2", "--new-tenant",
                 *base]) == 0
    # ... and a tenant with only a policy is known from then on
    assert main(["retention", "status", "--tenant", "newco", *base]) == 0
    capsys.readouterr()
