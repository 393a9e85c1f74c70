"""HIPAA 164.528 disclosure accounting: every decrypting read is logged, or does not happen."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from genai_audit.cli.main import main
from genai_audit.clickhouse.disclosure import (
    DisclosureRefused,
    ReadState,
    disclose,
    list_disclosures,
)
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.writer import InteractionWriter
from genai_audit.config import Settings
from genai_audit.processor.factory import default_pipeline

pytestmark = pytest.mark.integration

PHI = "MRN 00482913 shows elevated troponin"


@pytest.fixture
def records(store, keystore, make_span):
    content = json.dumps([{"role": "user", "parts": [{"type": "text", "content": PHI}]}])
    spans = [make_span(**{"enduser.id": "alice", "gen_ai.input.messages": content}),
             make_span(**{"enduser.id": "bob"}),
             make_span(**{"enduser.id": "carol", "tenant.id": "globex"})]
    built = default_pipeline(Settings.load(env={}), keystore).build(spans)
    InteractionWriter(store).write(built)
    return built


def test_content_is_null_in_the_audit_view(store, records):
    rows = store.rows("SELECT full_prompt_text, full_response_text, response_preview,"
                      " prompt_preview FROM llm_interaction_audit")
    assert rows == [(None, None, None, None)] * 3
    stored = store.rows("SELECT full_prompt_text, content_state FROM interactions")
    assert all(state == "encrypted" and PHI not in text for text, state in stored)


def test_every_decrypting_read_is_logged_per_tenant(store, keystore, records):
    alice, bob, carol = records
    read = disclose(store, keystore, [alice.id, carol.id, alice.id], actor="dr.lee",
                    purpose="treatment review", channel="report")
    assert [r.state for r in read] == [ReadState.DISCLOSED] * 2
    assert PHI in next(r.prompt_text for r in read if r.id == alice.id)
    assert all(r.commitment_ok for r in read)
    rows = store.rows("SELECT tenant_id, actor, purpose, channel, record_ids, user_keys,"
                      " records_disclosed FROM access_log ORDER BY tenant_id")
    assert [(r[0], r[1], r[2], r[3], [str(i) for i in r[4]], r[5], r[6]) for r in rows] == [
        ("acme", "dr.lee", "treatment review", "report", [alice.id], [alice.user_key], 1),
        ("globex", "dr.lee", "treatment review", "report", [carol.id], [carol.user_key], 1)]
    assert store.scalar("SELECT min(db_user) FROM access_log")  # the store's own account
    columns, listed = list_disclosures(store, "acme", user_key=bob.user_key)
    assert listed == []  # bob's records were not read
    columns, listed = list_disclosures(store, "acme", user_key=alice.user_key)
    assert len(listed) == 1 and dict(zip(columns, listed[0]))["actor"] == "dr.lee"


@pytest.mark.parametrize("actor, purpose", [(None, "audit"), ("", "audit"), ("dr.lee", None),
                                            ("dr.lee", "   "), ("dr.lee\n", "x\x00")])
def test_reads_without_actor_or_purpose_are_refused(store, keystore, records, actor, purpose):
    with pytest.raises(DisclosureRefused):
        disclose(store, keystore, [records[0].id], actor=actor, purpose=purpose)
    assert store.scalar("SELECT count() FROM access_log") == 0


def test_no_log_no_disclosure(store, keystore, records):
    store.command("RENAME TABLE access_log TO access_log_gone")
    with pytest.raises(StoreError):
        disclose(store, keystore, [records[0].id], actor="dr.lee", purpose="treatment")


def test_ciphertext_moved_to_another_record_does_not_open(store, keystore, records):
    alice = records[0]
    # A row forged with alice's ciphertext under a new id (as someone with INSERT could).
    forged = dataclasses.replace(alice, id=str(uuid.uuid4()))
    InteractionWriter(store).write([forged])
    [read] = disclose(store, keystore, [forged.id], actor="sec", purpose="forensics")
    assert read.state is ReadState.TAMPERED and read.prompt_text is None
    assert read.commitment_ok is False


def test_show_and_disclosures_cli(store, keystore, records, monkeypatch, capsys):
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    db = ["--dsn", store.dsn, "--database", store.database]
    alice = records[0]
    assert main(["show", *db, "--id", alice.id, "--actor", "dr.lee"]) == 2  # no purpose
    assert main(["show", *db, "--id", alice.id, "--purpose", "care"]) == 2  # no actor
    assert main(["show", *db, "--id", alice.id, "--actor", " ", "--purpose", "care"]) == 2
    assert "needs an actor" in capsys.readouterr().err
    assert store.scalar("SELECT count() FROM access_log") == 0
    assert main(["show", *db, "--id", alice.id, "--actor", "dr.lee", "--purpose", "care"]) == 0
    out = capsys.readouterr().out
    assert PHI in out and "commitments: ok" in out
    assert main(["show", *db, "--id", alice.id, "--id", "00000000-0000-4000-8000-000000000000",
                 "--actor", "dr.lee", "--purpose", "care", "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)[0]["state"] == "disclosed"
    assert main(["disclosures", *db, "--tenant", "acme", "--user", "alice",
                 "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["actor"], d["purpose"], d["record_ids"]) for d in listed] == [
        ("dr.lee", "care", [alice.id])] * 2
    assert main(["disclosures", *db, "--tenant", "acme", "--user", "stranger"]) == 1
    assert main(["erase", *db, "--tenant", "acme", "--user", "alice", "--reason",
                 "objection"]) == 0
    capsys.readouterr()
    assert main(["show", *db, "--id", alice.id, "--actor", "dr.lee", "--purpose", "care"]) == 0
    assert "[DATA ERASED PER GDPR ARTICLE 17]" in capsys.readouterr().out
    assert store.scalar("SELECT sum(records_erased) FROM access_log") == 1  # attempt logged


def test_show_a_subjects_records_for_an_access_request(store, keystore, records, make_span,
                                                       monkeypatch, capsys):
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    more = default_pipeline(Settings.load(env={}), keystore).build(
        [make_span(**{"enduser.id": "alice"})])
    more[0].has_pii_detected = True
    InteractionWriter(store).write(more)
    db = ["--dsn", store.dsn, "--database", store.database, "--actor", "dpo", "--format", "json"]
    assert main(["show", *db, "--purpose", "Art. 15 request", "--tenant", "acme",
                 "--user", "alice"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in shown) == sorted([records[0].id, more[0].id])
    assert PHI in json.dumps(shown)
    assert main(["show", *db, "--purpose", "SOC2 PII sample", "--tenant", "acme",
                 "--user-key", records[0].user_key, "--pii-only"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [more[0].id]
    logged = store.rows("SELECT purpose, length(record_ids) FROM access_log ORDER BY accessed_at")
    assert logged == [("Art. 15 request", 2), ("SOC2 PII sample", 1)]
    assert main(["show", *db, "--purpose", "x", "--tenant", "acme", "--user", "nobody"]) == 1
    assert main(["show", *db, "--purpose", "x", "--tenant", "acme"]) == 2
    assert main(["show", *db, "--purpose", "x", "--user", "alice"]) == 2
    assert main(["show", *db, "--purpose", "x", "--id", records[0].id, "--tenant", "acme",
                 "--user", "alice"]) == 2
