"""The retention, hold, archive, maintain and query --include-archive commands, end to end
through ``main`` (exit codes and output) on the embedded store and a real S3 server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from audit_records import KEY_ID, SECRET, write_records
from click.testing import CliRunner

from genai_audit.cli.main import cli, main

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(store, keystore, s3_endpoint, monkeypatch):
    monkeypatch.setenv("GENAI_AUDIT_DSN", store.dsn)
    monkeypatch.setenv("GENAI_AUDIT_DATABASE", store.database)
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    monkeypatch.setenv("GENAI_AUDIT_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("GENAI_AUDIT_S3_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("GENAI_AUDIT_S3_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("USER", "tester")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert SECRET not in out + err and KEY_ID not in out + err
    return code, out, err


def test_policy_and_hold_commands(cli_env, store, keystore, make_span, capsys):
    code, _, err = _run(capsys, "retention", "set", "--tenant", "acme", "--days", "400",
                        "--content-days", "30", "--reason", "SOC2", "--actor", "dpo")
    assert code == 2 and "unknown tenant 'acme'" in err  # no records yet: say it is new
    code, out, _ = _run(capsys, "retention", "set", "--tenant", "acme", "--days", "400",
                        "--content-days", "30", "--reason", "SOC2", "--actor", "dpo",
                        "--new-tenant")
    assert code == 0 and "acme: - -> 400d, content 30d (by dpo" in out
    code, out, _ = _run(capsys, "retention", "set", "--tenant", "acme", "--days", "10",
                        "--content-days", "30", "--reason", "x")
    assert code == 2
    code, out, _ = _run(capsys, "retention", "show")
    assert code == 0 and "dpo" in out and "SOC2" in out
    write_records(store, keystore, make_span, datetime.now(UTC), count=2)
    code, out, _ = _run(capsys, "hold", "add", "--tenant", "acme", "--user", "alice",
                        "--from", "2020-01-01", "--reason", "case 1")
    assert code == 0 and "2 records held" in out and "alice" not in out
    hold_id = out.split()[1]
    code, out, _ = _run(capsys, "hold", "list", "--tenant", "acme")
    assert code == 0 and hold_id in out and "tester" in out and "active" in out
    code, out, _ = _run(capsys, "retention", "status", "--tenant", "acme")
    assert code == 0 and "active legal holds:       1 (2 records held)" in out
    code, out, _ = _run(capsys, "hold", "release", hold_id, "--reason", "closed")
    assert code == 0 and "released by tester" in out
    code, _, err = _run(capsys, "hold", "release", hold_id, "--reason", "closed")
    assert code == 2 and "already released" in err and err.count("\n") == 1
    code, out, _ = _run(capsys, "hold", "list", "--all")
    assert code == 0 and "released" in out


def test_archive_commands_and_maintain(cli_env, store, keystore, make_span, s3_bucket, capsys,
                                      tmp_path):
    client, bucket = s3_bucket
    url = f"s3://{bucket}/audit"
    write_records(store, keystore, make_span, datetime.now(UTC) - timedelta(days=90), count=3,
                  ledger=True)
    write_records(store, keystore, make_span, datetime.now(UTC), ledger=True)
    code, out, _ = _run(capsys, "maintain", "--archive-to", url, "--settle-seconds", "0")
    assert code == 0 and "1 objects written (3 records)" in out and "intact" in out
    code, out, _ = _run(capsys, "archive", "--to", url, "--settle-seconds", "0")
    assert code == 0 and "0 objects written" in out and "1 already archived" in out
    code, out, _ = _run(capsys, "archive", "list", url)
    assert code == 0 and "part-00001.parquet" in out and "signature ok" in out
    code, out, _ = _run(capsys, "query", "--include-archive", url, "--format", "json",
                        "SELECT count() AS n, uniqExact(tenant_id) AS t "
                        "FROM archived_interactions")
    assert code == 0 and json.loads(out) == [{"n": 3, "t": 1}]
    code, out, _ = _run(capsys, "archive", "verify", url)
    assert code == 0 and "intact: 1 objects, 3 records" in out
    assert "3 leaves checked against the ledger's signed checkpoints (1 logs)" in out
    code, out, _ = _run(capsys, "verify", "--archive", url)
    assert code == 0 and "intact: 1 objects, 3 records" in out and "3 leaves checked" in out
    # an auditor checks with the public key they were given, without the keystore
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    (tmp_path / "store.pem").write_bytes(keystore.public_key_pem())
    code, out, _ = _run(capsys, "archive", "verify", url, "--pubkey", str(tmp_path / "store.pem"))
    assert code == 0 and "intact" in out
    (tmp_path / "other.pem").write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, out, _ = _run(capsys, "archive", "verify", url, "--pubkey", str(tmp_path / "other.pem"))
    assert code == 1 and "different key" in out
    key = next(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]
               if o["Key"].endswith(".parquet"))
    client.put_object(Bucket=bucket, Key=key, Body=b"PAR1 tampered")
    code, out, _ = _run(capsys, "archive", "verify", url)
    assert code == 1 and "PROBLEM" in out and "hash_mismatch" in out
    code, out2, _ = _run(capsys, "verify", "--archive", url)  # the same check, as issue 6 names it
    assert code == 1 and out2 == out
    code, out, _ = _run(capsys, "retention", "status")
    assert "last verification:" in out and "FAILED" in out
    code, _, err = _run(capsys, "archive", "--to", "ftp://example/x")
    assert code == 2 and err.startswith("genai-audit: error:") and err.count("\n") == 1


def test_help_teaches():
    for group in (["retention"], ["hold"], ["archive"], ["maintain"]):
        result = CliRunner().invoke(cli, [*group, "--help"])
        assert result.exit_code == 0
    assert "Examples:" in CliRunner().invoke(cli, ["hold", "add", "--help"]).output
    assert "CronJob" in CliRunner().invoke(cli, ["maintain", "--help"]).output


def test_maintain_as_cron_runs_it(tmp_path, s3_endpoint, s3_bucket):
    """A separate process, configured only through the environment, as cron would run it."""
    import os
    import subprocess
    import sys

    _, bucket = s3_bucket
    env = {**os.environ, "GENAI_AUDIT_DSN": str(tmp_path / "data"),
           "GENAI_AUDIT_ARCHIVE_URL": f"s3://{bucket}/cron",
           "GENAI_AUDIT_S3_ENDPOINT_URL": s3_endpoint,
           "GENAI_AUDIT_S3_ACCESS_KEY_ID": KEY_ID, "GENAI_AUDIT_S3_SECRET_ACCESS_KEY": SECRET}
    script = ("import sys\nfrom genai_audit.cli.main import main\n"
              "codes = [main(['maintain']), main(['retention', 'status'])]\n"
              "sys.exit(max(codes))\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "archive:   0 objects written" in done.stdout
    assert "last archive run:         " in done.stdout and f"s3://{bucket}/cron" in done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_settings_show_archive_settings_but_never_the_secret(cli_env, capsys):
    code = main(["settings", "--format", "json"])
    out, err = capsys.readouterr()
    assert SECRET not in out + err  # the key id is an identifier and may be shown
    shown = {row["setting"]: row for row in json.loads(out)}
    assert code == 0 and shown["s3_secret_access_key"]["value"] == "***"
    assert shown["archive_hot_days"]["value"] == "60"
    assert shown["s3_endpoint_url"]["source"] == "env GENAI_AUDIT_S3_ENDPOINT_URL"
