"""The ledger over the erasure tombstones and the access log: the tamper matrix on a real
store (changed directly in ClickHouse, as an insider with write access would), and the
erase -> verify path through the CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import populate

from genai_audit.cli.main import main
from genai_audit.clickhouse.disclosure import ACCESS_COLUMNS, disclose
from genai_audit.clickhouse.erasure import TOMBSTONE_COLUMNS, erase_subject
from genai_audit.clickhouse.ledger import verify as v
from genai_audit.clickhouse.ledger.leaf import ACCESS_LOG, SUBJECT_ERASURES, sql_leaf_hash
from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.ledger.session import CheckpointNotSigned
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore

pytestmark = pytest.mark.integration
SYNC = {"mutations_sync": 2}
USERS = [f"user-{i}" for i in range(5)]


@dataclass
class Trail:
    erasures: list[str]  # erasure ids, by position, of the long-lived session's log
    accesses: list[str]  # access ids, by position, of the long-lived session's log
    oneshot_erasure: str  # written by a one-command session (its own log)
    oneshot_access: str


def run(store: Store, keystore: LocalKeyStore, **kwargs: object) -> v.VerifyResult:
    return v.Verifier(store, keystore.signing_key().public_key()).run(**kwargs)  # type: ignore[arg-type]


def found(result: v.VerifyResult) -> set[tuple[str, str, int | None, str | None]]:
    return {(f.kind, f.table, f.position, f.record_id) for f in result.findings}


def session(store: Store, keystore: LocalKeyStore, schema, columns) -> Ledger:  # type: ignore[no-untyped-def]
    """A long-lived writer (as a gateway would keep): a checkpoint every 2 rows."""
    return Ledger(store, keystore.signing_key(), schema=schema, row_columns=columns,
                  checkpoint_records=2, checkpoint_seconds=3600)


def erase(store: Store, keystore: LocalKeyStore, user: str, ledger: Ledger | None) -> str:
    result = erase_subject(store, keystore, tenant_id="acme", user_id=user, reason="objection",
                           operator="dpo", ledger=ledger)
    return result.erasure_id


def access_id_of(store: Store, record_id: str) -> str:
    return str(store.scalar("SELECT toString(access_id) FROM access_log "
                            "WHERE has(record_ids, {r:UUID})", {"r": record_id}))


@pytest.fixture
def trail(store: Store, keystore: LocalKeyStore) -> Iterator[Trail]:
    record_ids = populate(store, keystore, n=10)
    keystore.subject_keys("acme", USERS)  # the data subjects exist (their keys do)
    tombstones = session(store, keystore, SUBJECT_ERASURES, TOMBSTONE_COLUMNS)
    erasures = [erase(store, keystore, u, tombstones) for u in USERS[:4]]
    tombstones.close()
    accesses = session(store, keystore, ACCESS_LOG, ACCESS_COLUMNS)
    for record_id in record_ids[:4]:
        disclose(store, keystore, [record_id], actor="auditor-kim", purpose="SOC2 sample",
                 ledger=accesses)
    accesses.close()
    oneshot_erasure = erase(store, keystore, USERS[4], None)
    disclose(store, keystore, record_ids[4:6], actor="dr.lee", purpose="treatment")
    trail = Trail(erasures, [access_id_of(store, r) for r in record_ids[:4]], oneshot_erasure,
                  access_id_of(store, record_ids[4]))
    result = run(store, keystore, strict=True)
    assert result.ok and not result.warnings, result.findings
    yield trail


def test_untouched_store_verifies_clean_over_every_table(store, keystore, trail):
    result = run(store, keystore, strict=True)
    assert {t: (n.records, n.logs, n.checkpoints) for t, n in result.tables.items()} == {
        "interactions": (10, 1, 1),
        "subject_erasures": (5, 2, 3),  # long-lived session signed at 2 and 4; one-shot at 1
        "access_log": (5, 2, 3)}
    positions = store.rows("SELECT toString(erasure_id), log_index, leaf_version "
                           "FROM subject_erasures ORDER BY erased_at")
    assert [(i, p) for i, p, _ in positions] == [
        *((e, n) for n, e in enumerate(trail.erasures)), (trail.oneshot_erasure, 0)]
    assert {int(version) for *_, version in positions} == {1}


def test_time_filter_selects_each_tables_logs_by_its_own_time(store, keystore, trail):
    later = datetime.now(UTC) + timedelta(minutes=5)
    only_future = run(store, keystore, since=later)
    assert only_future.ok and only_future.records == 0  # nothing written after "later"
    # event times of the interactions are a day back; erasures and reads happened just now
    recent = run(store, keystore, since=datetime.now(UTC) - timedelta(hours=1))
    assert {t: n.records for t, n in recent.tables.items()} == {
        "interactions": 0, "subject_erasures": 5, "access_log": 5}


def test_erasure_tombstone_deleted(store, keystore, trail):
    victim = trail.erasures[1]
    store.command("ALTER TABLE subject_erasures DELETE WHERE erasure_id = {e:UUID}",
                  {"e": victim}, settings=SYNC)
    assert found(run(store, keystore)) == {("deleted", "subject_erasures", 1, victim)}


@pytest.mark.parametrize("column, expr", [("operator", "'someone-else'"),
                                          ("db_user", "'mallory'")])
def test_erasure_tombstone_modified(store, keystore, trail, column, expr):
    victim = trail.erasures[2]
    store.command(f"ALTER TABLE subject_erasures UPDATE {column} = {expr} "
                  "WHERE erasure_id = {e:UUID}", {"e": victim}, settings=SYNC)
    assert found(run(store, keystore)) == {("modified", "subject_erasures", 2, victim)}


def test_erasure_tombstone_modified_and_leaf_hash_forged_to_match(store, keystore, trail):
    victim = trail.oneshot_erasure
    store.command("ALTER TABLE subject_erasures UPDATE records_affected = 99 "
                  "WHERE erasure_id = {e:UUID}", {"e": victim}, settings=SYNC)
    store.command(f"ALTER TABLE subject_erasures UPDATE leaf_hash = "
                  f"{sql_leaf_hash(SUBJECT_ERASURES)} WHERE erasure_id = {{e:UUID}}",
                  {"e": victim}, settings=SYNC)
    assert found(run(store, keystore)) == {("modified", "subject_erasures", 0, victim)}


def test_forged_access_log_rows_inserted(store, keystore, trail):
    forged = str(uuid.uuid4())  # written around the ledger: in no log
    store.command("INSERT INTO access_log (access_id, accessed_at, tenant_id, actor, purpose, "
                  "channel, record_ids, user_keys, records_disclosed, records_erased, "
                  "tool_version) VALUES ({a:UUID}, now64(6), 'acme', 'dr.lee', 'treatment', "
                  "'show', [], [], 0, 0, 'x')", {"a": forged})
    assert found(run(store, keystore)) == {("inserted", "access_log", None, forged)}

    # A careful forger claims a signed position and fixes the row's own leaf hash.
    claimed = str(uuid.uuid4())
    store.command("INSERT INTO access_log SELECT * REPLACE ({c:UUID} AS access_id, "
                  "'nobody' AS actor) FROM (SELECT * FROM access_log WHERE access_id = {a:UUID})",
                  {"a": trail.accesses[1], "c": claimed})
    store.command(f"ALTER TABLE access_log UPDATE leaf_hash = {sql_leaf_hash(ACCESS_LOG)} "
                  "WHERE access_id = {c:UUID}", {"c": claimed}, settings=SYNC)
    assert found(run(store, keystore)) == {("inserted", "access_log", None, forged),
                                           ("inserted", "access_log", 1, claimed)}


def test_access_log_rows_deleted_after_a_checkpoint(store, keystore, trail):
    store.command("ALTER TABLE access_log DELETE WHERE access_id IN {a:Array(UUID)}",
                  {"a": [trail.accesses[3], trail.oneshot_access]}, settings=SYNC)
    result = run(store, keystore)
    assert found(result) == {("truncated", "access_log", 3, trail.accesses[3]),
                             ("truncated", "access_log", 0, trail.oneshot_access)}
    assert all(f.log_id.startswith("access_log/acme/") for f in result.findings)


def _old_tombstone(store: Store, erased_at: str) -> str:
    old = str(uuid.uuid4())
    store.command("INSERT INTO subject_erasures (erasure_id, erased_at, tenant_id, "
                  "gdpr_pseudonymized_user_key, content_key_id, request_id, records_affected, "
                  "operator, reason, tool_version) VALUES ({e:UUID}, "
                  "toDateTime64({t:String}, 6, 'UTC'), 'acme', 'p', 'k', 'r', 3, 'dpo', "
                  "'objection', 'x')", {"e": old, "t": erased_at})
    return old


def test_rows_from_before_the_upgrade_are_legacy_warnings(store, keystore, trail):
    """A store created in 2024 and upgraded to migration 007 now holds tombstones written
    before the ledger covered the table: listed, not failed (failed under --strict). One
    dated before the store existed is a forgery."""
    store.command("ALTER TABLE schema_migrations UPDATE applied_at = "
                  "toDateTime64('2024-01-01 00:00:00', 6, 'UTC') WHERE version < 7",
                  settings=SYNC)
    old = _old_tombstone(store, "2025-01-02 03:04:05")
    forged = _old_tombstone(store, "2023-06-01 00:00:00")
    result = run(store, keystore)
    assert found(result) == {("inserted", "subject_erasures", None, forged)}
    assert [(w.kind, w.table, w.record_id) for w in result.warnings] == [
        ("legacy", "subject_erasures", old)]
    assert found(run(store, keystore, strict=True)) == {
        ("inserted", "subject_erasures", None, forged),
        ("legacy", "subject_erasures", None, old)}


def test_on_a_store_created_with_the_ledger_a_backdated_row_is_no_legacy(store, keystore,
                                                                         trail):
    forged = _old_tombstone(store, "2025-01-02 03:04:05")
    result = run(store, keystore)
    assert found(result) == {("inserted", "subject_erasures", None, forged)}
    assert not result.warnings


def test_erase_and_show_through_the_cli_then_verify_exits_0(store, keystore, monkeypatch,
                                                            capsys, tmp_path):
    record_ids = populate(store, keystore, n=6)
    keystore.subject_keys("acme", ["alice"])
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    db = ["--dsn", store.dsn, "--database", store.database]
    capsys.readouterr()
    assert main(["erase", *db, "--tenant", "acme", "--user", "alice", "--reason",
                 "subject-request", "--operator", "dpo", "--format", "json"]) == 0
    erasure_id = json.loads(capsys.readouterr().out)["erasure_id"]
    assert main(["erase", *db, "--tenant", "acme", "--user", "alice", "--reason",
                 "subject-request", "--request-id", erasure_id]) == 0  # no second tombstone
    assert "already erased" in capsys.readouterr().out
    keystore.subject_keys("acme", ["bob"])
    assert main(["erase", *db, "--tenant", "acme", "--user", "bob", "--reason", "objection"]) == 0
    out = capsys.readouterr().out
    assert "genai-audit prove --table subject_erasures --id " in out
    bob_erasure = out.rsplit("--id ", 1)[1].strip()
    assert main(["show", *db, "--id", record_ids[0], "--actor", "auditor-kim", "--purpose",
                 "SOC2 sample"]) == 0
    capsys.readouterr()
    assert main(["verify", *db, "--strict"]) == 0  # every row signed before the command ended
    out = capsys.readouterr().out
    assert out.startswith("INTACT: 9 records in 4 logs, 4 checkpoints")
    assert "subject_erasures" in out and "access_log" in out

    # the erasure's signed receipt: an inclusion proof of its tombstone, checkable offline
    receipt, pub = tmp_path / "erasure-receipt.json", tmp_path / "ledger.pub"
    assert main(["prove", *db, "--table", "subject_erasures", "--id", erasure_id,
                 "-o", str(receipt)]) == 0
    assert main(["checkpoint", "pubkey", *db, "-o", str(pub)]) == 0
    assert main(["verify-proof", str(receipt), "--pubkey", str(pub)]) == 0
    assert json.loads(receipt.read_text())["leaf_items"][0]["value"] == "subject_erasures/v1"

    store.command("ALTER TABLE subject_erasures DELETE WHERE 1", settings=SYNC)
    capsys.readouterr()
    assert main(["verify", *db, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {(f["kind"], f["table"], f["position"], f["record_id"])
            for f in report["findings"]} == {("truncated", "subject_erasures", 0, erasure_id),
                                             ("truncated", "subject_erasures", 0, bob_erasure)}
    assert report["tables"]["subject_erasures"] == {"records": 0, "logs": 2, "checkpoints": 2}
    assert main(["verify", *db, "--table", "interactions", "--table", "access_log"]) == 0
    out = capsys.readouterr().out
    assert "access_log" in out and "subject_erasures" not in out


def test_erasure_stops_before_destroying_the_key_when_no_checkpoint_can_be_signed(
        store, keystore):
    keystore.subject_keys("acme", ["alice"])
    store.command("RENAME TABLE ledger_checkpoints TO checkpoints_away")  # signing must fail
    try:
        with pytest.raises(CheckpointNotSigned, match="subject_erasures"):
            erase(store, keystore, "alice", None)
        assert keystore.find_subject("acme", "alice") is not None  # not erased yet
    finally:
        store.command("RENAME TABLE checkpoints_away TO ledger_checkpoints")
    erasure_id = erase(store, keystore, "alice", None)  # the rerun completes it
    assert keystore.find_subject("acme", "alice") is None
    assert store.scalar("SELECT count() FROM subject_erasures") == 1  # its tombstone reused
    result = run(store, keystore)  # the crash window stays visible: an unsigned tombstone
    assert result.ok and [(w.kind, w.table, w.position) for w in result.warnings] == [
        ("unanchored", "subject_erasures", 0)]
    assert str(store.scalar("SELECT toString(erasure_id) FROM subject_erasures")) == erasure_id


def test_a_read_across_tenants_signs_one_access_row_per_tenant(store, keystore):
    record_ids = populate(store, keystore, n=4, tenants=("acme", "globex"))
    read = disclose(store, keystore, record_ids, actor="auditor-kim", purpose="SOC2 sample")
    assert {r.tenant_id for r in read} == {"acme", "globex"}
    result = v.Verifier(store, keystore.signing_key().public_key(), schemas=[ACCESS_LOG]).run(
        strict=True)
    assert result.ok and (result.records, result.logs, result.checkpoints) == (2, 2, 2)
    assert sorted(str(t) for (t,) in store.rows("SELECT tenant_id FROM ledger_checkpoints "
                                                 "WHERE source_table = 'access_log'")) == [
        "acme", "globex"]


def test_a_ledger_for_another_table_is_refused(store, keystore):
    keystore.subject_keys("acme", ["alice"])
    wrong = Ledger(store, keystore.signing_key(), schema=ACCESS_LOG, row_columns=ACCESS_COLUMNS,
                   checkpoint_seconds=0)
    with pytest.raises(ValueError, match="access_log cannot write subject_erasures"):
        erase(store, keystore, "alice", wrong)
    assert keystore.find_subject("acme", "alice") is not None
    assert store.scalar("SELECT count() FROM subject_erasures") == 0
