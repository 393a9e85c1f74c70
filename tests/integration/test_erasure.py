"""GDPR Art. 17 erasure by crypto-shredding, library and CLI, against the embedded store."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
from collections import Counter

import pytest

from genai_audit.cli.main import main
from genai_audit.clickhouse.disclosure import ReadState, disclose
from genai_audit.clickhouse.erasure import (
    COUNT_SQL,
    ERASED_TEXT,
    ErasureError,
    ErasureResult,
    ErasureStatus,
    erase_subject,
)
from genai_audit.clickhouse.writer import InteractionWriter
from genai_audit.config import Settings
from genai_audit.masterkey import load_master_key
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.record import ContentState, Flag

pytestmark = pytest.mark.integration

SECRET = "my diagnosis is type 2 diabetes"
AUDITOR = {"actor": "auditor-1", "purpose": "erasure test"}
# A fingerprint of every stored byte of every row: erasure must not change one of them.
ALL_ROWS = ("SELECT count(), sum(cityHash64(*)), sum(total_cost), sum(prompt_tokens)"
            " FROM interactions")


def _messages(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])


@pytest.fixture
def ingested(store, keystore, make_span):
    spans = [make_span(**{"enduser.id": "alice", "gen_ai.input.messages": _messages(SECRET)}),
             make_span(**{"enduser.id": "alice", "genai_audit.tool": "contract_review"}),
             make_span(**{"enduser.id": "bob"}),
             make_span(**{"enduser.id": "alice", "tenant.id": "globex"}),
             make_span(**{"enduser.id": None})]
    records = default_pipeline(Settings.load(env={}), keystore).build(spans)
    InteractionWriter(store).write(records)
    return records


def _erase(store, keystore, user="alice", tenant="acme", **kw):
    return erase_subject(store, keystore, tenant_id=tenant, user_id=user,
                         reason=kw.pop("reason", "subject-request"),
                         operator=kw.pop("operator", "dpo"), **kw)


def test_erasure_makes_content_unreadable_and_keeps_everything_else(store, keystore, ingested):
    alice_key = keystore.find_subject("acme", "alice")
    before = store.rows(ALL_ROWS)
    result = _erase(store, keystore, request_id="DSR-7")
    assert result.status is ErasureStatus.ERASED and result.records_affected == 2
    assert result.user_key == alice_key.pseudonym and result.request_id == "DSR-7"
    assert store.rows(ALL_ROWS) == before  # no row updated, deleted or added; costs add up

    read = {r.id: r for r in disclose(store, keystore, [r.id for r in ingested], **AUDITOR)}
    alice_acme, alice_tool, bob, alice_globex, nobody = (read[r.id] for r in ingested)
    for erased in (alice_acme, alice_tool):
        assert erased.state is ReadState.ERASED
        assert erased.prompt_text == erased.response_text == ERASED_TEXT
        assert erased.tool_name and erased.model == "gpt-4o"  # metadata intact
    for untouched in (bob, alice_globex, nobody):  # other subjects, tenants, no-user key
        assert untouched.state is ReadState.DISCLOSED and untouched.commitment_ok
    assert SECRET not in json.dumps([vars(r) for r in read.values()], default=str)

    [tomb] = store.rows("SELECT tenant_id, gdpr_pseudonymized_user_key, request_id,"
                        " records_affected, operator, reason, content_key_id"
                        " FROM subject_erasures")
    assert tomb == ("acme", alice_key.pseudonym, "DSR-7", 2, "dpo", "subject-request",
                    alice_key.key_id)
    assert "alice" not in json.dumps(store.rows("SELECT * FROM subject_erasures"), default=str)

    view = store.rows("SELECT user_id, full_prompt_text, full_response_text, response_preview,"
                      " prompt_preview FROM llm_interaction_audit")
    assert Counter(v[1:] for v in view) == {(None,) * 4: 3, (ERASED_TEXT,) * 4: 2}
    assert {v[0] for v in view if v[1] == ERASED_TEXT} == {alice_key.pseudonym}


def test_erased_key_is_unrecoverable_from_the_keystore_file(store, keystore, ingested):
    alice = keystore.find_subject("acme", "alice")
    with sqlite3.connect(keystore.path) as db:
        [(wrapped,)] = db.execute("SELECT wrapped FROM subjects WHERE pseudonym = ?",
                                  (alice.pseudonym,)).fetchall()
    _erase(store, keystore)
    files = b"".join(p.read_bytes() for p in keystore.directory.rglob("*") if p.is_file())
    assert wrapped not in files and alice.dek not in files
    assert alice.pseudonym.encode() not in files  # the user id -> pseudonym link is gone too


def test_erasure_is_idempotent_by_request_and_unknown_subjects_are_not_success(
        store, keystore, ingested):
    first = _erase(store, keystore, request_id="DSR-1")
    again = _erase(store, keystore, request_id="DSR-1")  # a retry of the same request
    assert again.status is ErasureStatus.ALREADY_ERASED
    assert (again.erasure_id, again.records_affected) == (first.erasure_id, 2)
    assert again.user_key == ""  # the answer names no pseudonym
    assert store.scalar("SELECT count() FROM subject_erasures") == 1
    # Without the request id, the erased user and a user never seen get the same answer:
    # anything else would be a test of a guessed user id.
    for user, tenant in (("alice", "acme"), ("zed", "acme"), ("bob", "globex")):
        result = _erase(store, keystore, user=user, tenant=tenant, request_id="DSR-other")
        assert result == ErasureResult(ErasureStatus.UNKNOWN, tenant)
    assert store.scalar("SELECT count() FROM subject_erasures") == 1


def test_a_crash_after_the_tombstone_is_repaired_by_running_again(store, keystore, ingested):
    class CrashBeforeDestroy:
        def __getattr__(self, name):
            if name == "destroy_subject":
                raise RuntimeError("crash")
            return getattr(keystore, name)

    with pytest.raises(RuntimeError):
        _erase(store, CrashBeforeDestroy())
    assert keystore.find_subject("acme", "alice") is not None  # not yet erased
    done = _erase(store, keystore)
    assert done.status is ErasureStatus.ERASED
    assert store.scalar("SELECT count() FROM subject_erasures") == 1  # tombstone reused


@pytest.mark.parametrize("kw, message", [({"reason": "because"}, "unknown reason"),
                                         ({"operator": "Jane Doe"}, "operator"),
                                         ({"request_id": "x'; DROP"}, "request id")])
def test_bad_requests_are_refused_before_anything_happens(store, keystore, ingested, kw,
                                                           message):
    with pytest.raises(ErasureError, match=message):
        _erase(store, keystore, **kw)
    assert keystore.find_subject("acme", "alice") is not None


def test_erase_cli_exit_codes(store, keystore, ingested, monkeypatch, capsys):
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    base = ["erase", "--dsn", store.dsn, "--database", store.database, "--tenant", "acme",
            "--reason", "consent-withdrawn", "--operator", "dpo"]
    assert main([*base, "--user", "alice", "--request-id", "DSR-9"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("erased:") and "2 record(s)" in out and "alice" not in out
    assert main([*base, "--user", "alice", "--request-id", "DSR-9"]) == 0
    assert "already erased: request DSR-9" in capsys.readouterr().out
    assert main([*base, "--user", "alice", "--format", "json"]) == 1
    erased = capsys.readouterr().out
    assert main([*base, "--user", "nobody-we-know", "--format", "json"]) == 1
    assert capsys.readouterr().out == erased  # the same answer: never seen, or erased
    assert json.loads(erased)["status"] == "unknown"
    assert main([*base, "--user", "nobody-we-know"]) == 1
    assert "never seen, or already erased" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("bob\n"))
    assert main([*base, "--user", "-"]) == 0  # the user id from stdin, not argv
    assert "erased:" in capsys.readouterr().out
    assert main([*base[:-4], "--user", "x", "--reason", "whim"]) == 2


def test_counting_a_subjects_records_reads_the_projection_not_the_records(store, ingested):
    plan = "\n".join(r[0] for r in store.rows(
        "EXPLAIN " + COUNT_SQL, {"t": "acme", "p": ingested[0].user_key}))
    assert "subject_counts" in plan


def test_records_in_flight_during_the_erasure_are_erased_too(store, keystore, ingested,
                                                             make_span):
    old_pseudonym = keystore.find_subject("acme", "alice").pseudonym
    in_flight = make_span(**{"enduser.id": "alice", "gen_ai.input.messages": _messages(SECRET)})
    _erase(store, keystore)
    comes_back = make_span(**{"enduser.id": "alice"})  # the user returns after the erasure
    pipeline = default_pipeline(Settings.load(env={}), keystore)
    late, new = pipeline.build([in_flight, comes_back])
    assert Flag.SUBJECT_ERASED in late.flags and late.content_state is ContentState.WITHHELD
    assert late.user_key == "" and late.prompt_text == "" and late.prompt_tokens == 10
    assert new.content_state is ContentState.ENCRYPTED and not new.flags
    assert new.user_key not in ("", old_pseudonym)  # a new data subject
    InteractionWriter(store).write([late, new])
    assert SECRET not in json.dumps(store.rows("SELECT * FROM interactions"), default=str)


def test_readers_never_create_a_keystore_where_there_is_none(store, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(tmp_path / "wrong-place"))
    db = ["--dsn", store.dsn, "--database", store.database]
    assert main(["erase", *db, "--tenant", "acme", "--user", "alice", "--reason",
                 "objection"]) == 2
    assert "no keystore at" in capsys.readouterr().err
    assert main(["disclosures", *db, "--tenant", "acme", "--user", "alice"]) == 2
    assert not (tmp_path / "wrong-place").exists()


def test_a_legal_hold_defers_the_erasure(store, keystore, ingested):
    from genai_audit.clickhouse.holds import add_hold, release_hold

    hold = add_hold(store, keystore, tenant_id="acme", user_id="alice", reason="litigation",
                    actor="counsel")
    held = _erase(store, keystore)
    assert held.status is ErasureStatus.HELD and held.held_by == (hold.hold_id,)
    assert keystore.find_subject("acme", "alice") is not None  # nothing destroyed
    assert store.scalar("SELECT count() FROM subject_erasures") == 0
    assert _erase(store, keystore, user="bob").status is ErasureStatus.ERASED  # not held
    release_hold(store, hold.hold_id, actor="counsel", reason="settled")
    assert _erase(store, keystore).status is ErasureStatus.ERASED


def test_an_erased_subjects_records_read_as_erased_in_the_auditor_views(store, keystore,
                                                                         make_span):
    """Issue 17: erased records said content_state = 'encrypted' in the views although
    their key is gone and nobody can ever decrypt them."""
    spans = [make_span(**{"enduser.id": user, "genai_audit.data_class": "phi",
                          "gen_ai.input.messages": _messages("call me at +1 415 555 0100")})
             for user in ("alice", "alice", "bob")]
    records = default_pipeline(Settings.load(env={}), keystore).build(spans)
    InteractionWriter(store).write(records)
    alice = keystore.find_subject("acme", "alice").pseudonym
    state = ("SELECT user_key, content_state FROM {view} ORDER BY user_key, content_state")
    for view in ("audit_phi_interactions", "audit_pii_interactions"):
        assert {s for _, s in store.rows(state.format(view=view))} == {"encrypted"}
    assert _erase(store, keystore).status is ErasureStatus.ERASED
    for view in ("audit_phi_interactions", "audit_pii_interactions"):
        rows = store.rows(state.format(view=view))
        assert [s for k, s in rows if k == alice] == ["erased", "erased"], view
        assert [s for k, s in rows if k != alice] == ["encrypted"], view


# -- issue 16.4 end to end: a swapped subject mapping stops erase and ingest ----------------

def _swap_lookups(path, a: str, b: str) -> None:
    """What anyone who can write the keystore file can do, without any key."""
    with sqlite3.connect(path) as db:
        lookups = dict(db.execute("SELECT pseudonym, lookup FROM subjects").fetchall())
        db.execute("UPDATE subjects SET lookup = 'swap' WHERE pseudonym = ?", (a,))
        db.execute("UPDATE subjects SET lookup = ? WHERE pseudonym = ?", (lookups[a], b))
        db.execute("UPDATE subjects SET lookup = ? WHERE pseudonym = ?", (lookups[b], a))


def test_a_swapped_subject_mapping_is_refused_not_erased_or_used(store, keystore, make_span,
                                                                 monkeypatch, capsys):
    spans = [make_span(**{"enduser.id": f"user-{i}", "gen_ai.input.messages": _messages(SECRET)})
             for i in (0, 1)]
    records = default_pipeline(Settings.load(env={}), keystore).build(spans)
    InteractionWriter(store).write(records)
    user0, user1 = (r.user_key for r in records)
    _swap_lookups(keystore.path, user0, user1)

    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    assert main(["erase", "--dsn", store.dsn, "--database", store.database, "--tenant", "acme",
                 "--user", "user-0", "--reason", "objection", "--operator", "dpo"]) == 2
    err = capsys.readouterr().err
    assert "does not match its MAC" in err and "swapped" in err
    assert "user-0" not in err and user0 not in err and user1 not in err
    assert store.scalar("SELECT count() FROM subject_erasures") == 0  # nothing erased
    with sqlite3.connect(keystore.path) as db:
        assert {p for (p,) in db.execute("SELECT pseudonym FROM subjects")} >= {user0, user1}

    # Ingest fails closed: no record is stored under the other subject's key.
    later = default_pipeline(Settings.load(env={}), keystore.__class__(keystore.directory))
    [late] = later.build([make_span(**{"enduser.id": "user-0",
                                       "gen_ai.input.messages": _messages(SECRET)})])
    assert Flag.PSEUDONYMIZATION_FAILED in late.flags and late.user_key == ""
    assert late.content_state is ContentState.WITHHELD


# -- issue 16.5: after erasure, no surviving key tests a guessed user id ---------------------

def _surviving_values(store, keystore) -> set[object]:
    """Every value an attacker with the keystore file, its master key and the store can
    read: each column of each keystore table and each store table, plus each 64-hex run
    inside any text (a digest embedded in a longer value)."""
    values: set[object] = set()
    with sqlite3.connect(keystore.path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                values.update(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row)
    for (table,) in store.rows("SELECT name FROM system.tables WHERE database = {d:String}"
                               " AND engine NOT LIKE '%View'", {"d": store.database}):
        for row in store.rows(f"SELECT * FROM `{table}`"):
            values.update(v if isinstance(v, bytes) else str(v) for v in row)
    texts = [v for v in values if isinstance(v, str)]
    values.update(m for text in texts for m in re.findall(r"[0-9a-f]{64}", text))
    return values


def _every_surviving_secret(keystore) -> list[bytes]:
    """The master key opens every wrapped secret in the keystore: all of them, whatever
    their purpose (subject index, redaction, row MACs, signing key)."""
    master = load_master_key(keystore.master_key_file, create=False)
    with sqlite3.connect(keystore.path) as db:
        rows = db.execute("SELECT name, wrapped FROM secrets").fetchall()
    return [master.unwrap(bytes(wrapped), b"secret\0" + name.encode()) for name, wrapped in rows]


def test_nobody_holding_every_surviving_key_can_reidentify_an_erased_subject(
        store, keystore, make_span):
    users = [f"user-{i}" for i in range(40)]
    spans = [make_span(**{"enduser.id": u, "genai_audit.tool": "triage"}) for u in users]
    InteractionWriter(store).write(default_pipeline(Settings.load(env={}), keystore).build(spans))
    erased = {"user-7", "user-23"}
    for user in sorted(erased):
        assert _erase(store, keystore, user=user).status is ErasureStatus.ERASED

    # The attack: 10,100 candidate ids, every keyed and unkeyed digest the surviving keys
    # allow, matched against everything that survives.
    candidates = [f"user-{i}" for i in range(10_000)] + [f"guest-{i}" for i in range(100)]
    secrets = _every_surviving_secret(keystore)
    surviving = _surviving_values(store, keystore)
    found = set()
    for candidate in candidates:
        data = candidate.encode()
        digests = [hashlib.sha256(data).digest()] + [hmac.digest(s, data, "sha256")
                                                     for s in secrets]
        if candidate in surviving or any(d in surviving or d.hex() in surviving
                                         for d in digests):
            found.add(candidate)
    live = set(users) - erased
    assert found == live  # live subjects are mapped by design; the erased ones are not
    # and the product itself answers the same for an erased id and one never seen
    assert {keystore.find_subject("acme", u) for u in (*erased, "user-9999")} == {None}
