"""Every query of docs/auditor-cookbook.md, read from the file and run on demo-like rows.

The erasure and disclosure recipes run on a real erasure and a real decrypting read; the
`verify` command of the ledger feature runs once it exists.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from demo_data import PERIOD, SPECS, user_key, write_specs

from genai_audit.cli.main import main
from genai_audit.clickhouse.disclosure import disclose
from genai_audit.clickhouse.erasure import erase_subject

pytestmark = pytest.mark.integration

COOKBOOK = Path(__file__).resolve().parents[3] / "docs" / "auditor-cookbook.md"
RECIPES = dict(re.findall(r"<!-- recipe: (\w+) -->\s*```sql\n(.*?)```",
                          COOKBOOK.read_text(), re.S))
START, END = PERIOD


def run(store, name, **params):
    result = store.query(RECIPES[name], params)
    return list(result.column_names), [tuple(r) for r in result.result_rows]


def test_every_question_has_a_recipe():
    assert set(RECIPES) == {"pii_prompts_of_user", "cost_of_tool_last_month",
                            "seed_cost_query", "soc2_activity", "control_failures",
                            "phi_routes", "phi_readers_of_patient", "erasures",
                            "records_without_commitments", "throttled_last_month"}


def test_pii_prompts_of_user(audit_store, keystore):
    key = user_key(keystore, "acme", "alice")
    _, rows = run(audit_store, "pii_prompts_of_user", tenant="acme", user_key=key,
                  start=START, end=END)
    expected = sorted((s for s in SPECS if s.tenant == "acme" and s.user == "alice"
                       and s.has_pii), key=lambda s: s.at)
    assert len(expected) >= 2
    assert [(r[0], r[1], bool(r[5])) for r in rows] == [
        (s.at.replace(tzinfo=None), s.tool, s.redacted_before_llm) for s in expected]  # UTC
    assert all(r[4] for r in rows)  # entity types named
    # an earlier quarter has none
    assert run(audit_store, "pii_prompts_of_user", tenant="acme", user_key=key,
               start=datetime(2023, 7, 1, tzinfo=UTC), end=datetime(2023, 10, 1, tzinfo=UTC)
               )[1] == []


def test_cost_of_tool_last_month(audit_store, keystore):
    first_of_month = date.today().replace(day=1)
    last_month = datetime.combine(first_of_month - timedelta(days=20), datetime.min.time(),
                                  tzinfo=UTC)
    recent = [dataclasses.replace(s, at=last_month + timedelta(minutes=i))
              for i, s in enumerate(SPECS[:12])]
    write_specs(audit_store, keystore, recent)
    _, rows = run(audit_store, "cost_of_tool_last_month", tool="contract_review")
    mine = [s for s in recent if s.tool == "contract_review"]
    assert rows == [("contract_review", sum((s.cost for s in mine), Decimal(0)), len(mine),
                     sum(s.prompt_tokens + s.response_tokens for s in mine), 0)]


def test_seed_cost_query_runs_verbatim(audit_store):
    _, rows = run(audit_store, "seed_cost_query")
    assert rows == [(sum((s.cost for s in SPECS if s.tool == "contract_review"
                          and s.at > datetime(2024, 4, 1, tzinfo=UTC)), Decimal(0)),)]


def test_soc2_activity(audit_store):
    columns, rows = run(audit_store, "soc2_activity", tenant="acme", start=START.date(),
                        end=END.date())
    assert columns == ["day", "tool_name", "user_key", "model", "total_tokens", "cost",
                       "interactions"]
    acme = [s for s in SPECS if s.tenant == "acme"]
    assert sum(r[6] for r in rows) == len(acme)
    assert sum(r[5] for r in rows) == sum((s.cost for s in acme), Decimal(0))


def test_control_failures(audit_store):
    _, rows = run(audit_store, "control_failures", start=START, end=END)
    assert {r[0]: r[1] for r in rows} == {"unattributed": 1, "unknown_model": 1,
                                          "redaction_failed": 1, "content_withheld": 1}


def test_phi_routes(audit_store):
    _, rows = run(audit_store, "phi_routes", start=START, end=END)
    assert sorted((r[1], r[3], r[4]) for r in rows) == [("eu", False, 1),
                                                        ("us-hipaa", True, 1)]


def test_records_without_commitments(audit_store):
    _, rows = run(audit_store, "records_without_commitments", start=START, end=END)
    assert {r[0]: r[1] for r in rows} == {
        t: sum(s.tenant_id == t for s in SPECS) for t in {s.tenant_id for s in SPECS}}
    assert all(r[2] == 0 for r in rows)


def test_erasure_and_disclosure_recipes_on_real_events(audit_store, keystore):
    """A real erasure and a real decrypting read, then the recipes that report them."""
    erased = next(s for s in SPECS if s.tenant == "acme")
    phi_id, tenant, patient_key = audit_store.rows(
        "SELECT toString(id), tenant_id, user_key FROM audit_phi_interactions"
        " WHERE user_key != {k:String} ORDER BY id LIMIT 1",
        {"k": user_key(keystore, "acme", erased.user)})[0]
    disclose(audit_store, keystore, [phi_id], actor="dr.who", purpose="treatment")
    result = erase_subject(audit_store, keystore, tenant_id="acme", user_id=erased.user,
                           reason="subject-request", operator="dpo", request_id="DSR-1")
    now = datetime.now(UTC)
    _, rows = run(audit_store, "erasures", start=now - timedelta(hours=1),
                  end=now + timedelta(hours=1))
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("acme", "DSR-1", result.records_affected, "dpo")]
    assert result.records_affected == sum(s.tenant == "acme" and s.user == erased.user
                                          for s in SPECS)
    _, rows = run(audit_store, "phi_readers_of_patient", tenant=tenant,
                  patient_key=patient_key)
    assert [(r[1], r[2], str(r[3])) for r in rows] == [("dr.who", "treatment", phi_id)]


def test_query_command_with_params_and_pseudonym_command(audit_store, keystore, store_dsn,
                                                         capsys, monkeypatch):
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    store = ["--dsn", store_dsn, "--database", audit_store.database]
    assert main(["pseudonym", *store, "--tenant", "acme", "--user", "alice"]) == 0
    key = capsys.readouterr().out.strip()
    assert key == user_key(keystore, "acme", "alice")
    assert main(["query", *store, "--format", "json", "--param", "tenant=acme",
                 "--param", f"user_key={key}", "--param", "start=2024-03-01 00:00:00",
                 "--param", "end=2024-05-01 00:00:00", RECIPES["pii_prompts_of_user"]]) == 0
    assert capsys.readouterr().out.count('"event_timestamp"') == sum(
        s.tenant == "acme" and s.user == "alice" and s.has_pii for s in SPECS)
    assert main(["pseudonym", *store, "--tenant", "acme", "--user", "nobody"]) == 1
    assert main(["pseudonym", *store, "--tenant", "typo", "--user", "alice"]) == 2
    assert "has no records" in capsys.readouterr().err
    assert main(["query", *store, "--param", "oops", "SELECT 1"]) == 2
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory / "elsewhere"))
    assert main(["pseudonym", *store, "--tenant", "acme", "--user", "alice"]) == 2
    assert "no keystore" in capsys.readouterr().err
    assert not (keystore.directory / "elsewhere").exists()


def test_the_seed_question_by_user_id_is_answered_through_the_pseudonym(
        audit_store, keystore, store_dsn, capsys, monkeypatch):
    """Issue 17: the view's user_id is the pseudonym, so the article's
    `WHERE user_id = 'abc123'` silently returned nothing; --user resolves the id."""
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    store = ["--dsn", store_dsn, "--database", audit_store.database, "--format", "json"]
    alice = sum(s.tenant == "acme" and s.user == "alice" for s in SPECS)
    assert main(["query", *store, "SELECT count() AS n FROM llm_interaction_audit "
                 "WHERE user_id = 'alice'"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0}]  # the pitfall, documented
    assert main(["query", *store, "--user", "u=acme:alice", "SELECT count() AS n FROM "
                 "llm_interaction_audit WHERE user_id = {u:String}"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": alice}] and alice > 0
    assert main(["query", *store, "--user", "u=acme:nobody", "SELECT 1"]) == 1
    assert "no live data subject" in capsys.readouterr().err
    assert main(["query", *store, "--user", "u=alice", "SELECT 1"]) == 2
    assert "alice" not in capsys.readouterr().err  # a user id is never echoed


def test_report_sha256_sidecar_proves_the_file(shared_audit_store, store_dsn, tmp_path):
    out = tmp_path / "q.html"
    assert main(["report", "--dsn", store_dsn, "--database", shared_audit_store.database,
                 "--from", "2024-03-01", "--to", "2024-04-30", "--format", "html",
                 "--out", str(out)]) == 0
    check = ["sha256sum", "-c", "q.html.sha256"]
    assert subprocess.run(check, cwd=tmp_path, capture_output=True).returncode == 0
    out.write_bytes(out.read_bytes().replace(b"Verdict", b"Verdikt"))
    assert subprocess.run(check, cwd=tmp_path, capture_output=True).returncode != 0


def test_verify_command(audit_store, store_dsn, keystore, tmp_path):
    pub = tmp_path / "ledger.pub"  # the demo rows were signed with the test keystore's key
    pub.write_bytes(keystore.public_key_pem())
    assert main(["verify", "--dsn", store_dsn, "--database", audit_store.database,
                 "--tenant", "acme", "--from", "2024-03-01", "--to", "2024-04-30",
                 "--pubkey", str(pub), "--strict"]) == 0


def test_pseudonymization_failure_is_a_control_failure(store, keystore):
    from ledger_helpers import ledgered_writer, make_record

    from genai_audit.processor.record import Flag
    writer = ledgered_writer(store, keystore)
    writer.write([make_record(0, flags={Flag.PSEUDONYMIZATION_FAILED, Flag.CONTENT_WITHHELD}),
                  make_record(1)])
    writer.ledger.close()
    rows = store.rows("SELECT failure, count() FROM audit_control_failures GROUP BY failure "
                      "ORDER BY failure")
    assert rows == [("content_withheld", 1), ("pseudonymization_failed", 1)]
