"""The tamper matrix: change a populated store directly in ClickHouse, the way an insider
with write access would, and check that verify names each changed record."""

from __future__ import annotations

import pytest
from ledger_helpers import populate

from genai_audit.clickhouse.ledger import verify as v
from genai_audit.clickhouse.ledger.leaf import INTERACTIONS, sql_leaf_hash
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore

pytestmark = pytest.mark.integration
SYNC = {"mutations_sync": 2}
N = 60  # 10-record batches, checkpoint due after 16: signed at sizes 20, 40 and 60


def run(store: Store, keystore: LocalKeyStore, **kwargs: object) -> v.VerifyResult:
    verifier = v.Verifier(store, keystore.signing_key().public_key())
    return verifier.run(**kwargs)  # type: ignore[arg-type]


def position_of(store: Store, record_id: str) -> tuple[str, int]:
    log_id, index = store.rows("SELECT log_id, log_index FROM interactions "
                               "WHERE id = {id:UUID}", {"id": record_id})[0]
    return str(log_id), int(index)


def id_at(store: Store, position: int) -> str:
    return str(store.scalar("SELECT toString(id) FROM interactions WHERE log_index = {p:UInt64}",
                            {"p": position}))


def kinds(result: v.VerifyResult) -> set[tuple[str, int | None, str | None]]:
    return {(f.kind, f.position, f.record_id) for f in result.findings}


def rewrite(store: Store, record_id: str, column: str, expr: str) -> None:
    """Change a key column (not updatable in place): copy the row changed, drop the original."""
    store.command("CREATE TABLE tamper_tmp AS interactions")
    store.command("INSERT INTO tamper_tmp SELECT * FROM interactions WHERE id = {id:UUID}",
                  {"id": record_id})
    store.command("ALTER TABLE interactions DELETE WHERE id = {id:UUID}", {"id": record_id},
                  settings=SYNC)
    store.command(f"INSERT INTO interactions SELECT * REPLACE ({expr} AS {column}) "
                  "FROM tamper_tmp")
    store.command("DROP TABLE tamper_tmp")


@pytest.fixture
def populated(store: Store, keystore: LocalKeyStore) -> list[str]:
    ids = populate(store, keystore, n=N)
    result = run(store, keystore)
    assert result.ok and not result.warnings, result
    assert (result.records, result.logs) == (N, 1)
    return ids


def test_untouched_store_verifies_clean(store, keystore, populated):
    result = run(store, keystore)
    assert result.ok and result.records == N and result.checkpoints == 3


def test_content_changed(store, keystore, populated):
    target = id_at(store, 20)
    store.command("ALTER TABLE interactions UPDATE full_prompt_text = 'nothing to see' "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    assert kinds(run(store, keystore)) == {("modified", 20, target)}


def test_content_changed_and_leaf_hash_forged_to_match(store, keystore, populated):
    """A careful attacker also recomputes the row's leaf hash: the signed root still names
    the row (through the leaves the checkpoint recorded)."""
    target = id_at(store, 33)
    store.command("ALTER TABLE interactions UPDATE response_preview = 'rewritten' "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    store.command(f"ALTER TABLE interactions UPDATE leaf_hash = {sql_leaf_hash(INTERACTIONS)} "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    assert kinds(run(store, keystore)) == {("modified", 33, target)}


def test_cost_changed(store, keystore, populated):
    target = id_at(store, 5)
    store.command("ALTER TABLE interactions UPDATE total_cost = total_cost / 10 "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    assert kinds(run(store, keystore)) == {("modified", 5, target)}


def test_timestamp_changed(store, keystore, populated):
    target = id_at(store, 41)
    rewrite(store, target, "event_timestamp", "event_timestamp - INTERVAL 1 HOUR")
    assert kinds(run(store, keystore)) == {("modified", 41, target)}


def test_tenant_changed(store, keystore, populated):
    target = id_at(store, 8)
    rewrite(store, target, "tenant_id", "'globex'")
    assert kinds(run(store, keystore)) == {("modified", 8, target)}
    # also when the auditor asks about the original tenant only
    assert kinds(run(store, keystore, tenant="acme")) == {("modified", 8, target)}


def test_row_deleted(store, keystore, populated):
    target = id_at(store, 12)
    store.command("ALTER TABLE interactions DELETE WHERE id = {id:UUID}", {"id": target},
                  settings=SYNC)
    assert kinds(run(store, keystore)) == {("deleted", 12, target)}


def test_forged_row_inserted_at_a_signed_position(store, keystore, populated):
    store.command("INSERT INTO interactions SELECT * REPLACE (generateUUIDv4() AS id, "
                  "'forged' AS full_response_text) FROM interactions WHERE log_index = 30")
    store.command(f"ALTER TABLE interactions UPDATE leaf_hash = {sql_leaf_hash(INTERACTIONS)} "
                  "WHERE full_response_text = 'forged'", settings=SYNC)
    forged = str(store.scalar("SELECT toString(id) FROM interactions "
                              "WHERE full_response_text = 'forged'"))
    assert kinds(run(store, keystore)) == {("inserted", 30, forged)}


def test_forged_row_appended_after_the_last_checkpoint(store, keystore, populated):
    store.command("INSERT INTO interactions SELECT * REPLACE (generateUUIDv4() AS id, "
                  f"{N} AS log_index) FROM interactions WHERE request_id = 'req-3'")
    store.command(f"ALTER TABLE interactions UPDATE leaf_hash = {sql_leaf_hash(INTERACTIONS)} "
                  f"WHERE log_index = {N}", settings=SYNC)
    assert store.scalar(f"SELECT count() FROM interactions WHERE log_index = {N}") == 1
    lenient = run(store, keystore)
    assert lenient.ok and [w.kind for w in lenient.warnings] == ["unanchored"]
    strict = run(store, keystore, strict=True)
    assert [(f.kind, f.position) for f in strict.findings] == [("unanchored", N)]


def test_row_written_around_the_ledger(store, keystore, populated):
    store.command("INSERT INTO interactions SELECT * REPLACE (generateUUIDv4() AS id, "
                  "'' AS log_id) FROM interactions WHERE log_index = 3")
    result = run(store, keystore)
    assert [(f.kind, f.log_id) for f in result.findings] == [("inserted", "")]


def test_two_rows_swapped(store, keystore, populated):
    a, b = id_at(store, 17), id_at(store, 44)
    store.command("ALTER TABLE interactions UPDATE log_index = if(log_index = 17, 44, 17) "
                  "WHERE log_index IN (17, 44)", settings=SYNC)
    assert kinds(run(store, keystore)) == {("reordered", 44, a), ("reordered", 17, b)}


def test_newest_rows_deleted_after_a_checkpoint(store, keystore, populated):
    gone = [id_at(store, p) for p in range(55, N)]
    store.command("ALTER TABLE interactions DELETE WHERE log_index >= 55", settings=SYNC)
    assert kinds(run(store, keystore)) == {("truncated", p, gone[p - 55])
                                           for p in range(55, N)}


def test_checkpoint_row_altered(store, keystore, populated):
    store.command("ALTER TABLE ledger_checkpoints UPDATE note = replaceOne(note, '\\n40\\n', "
                  "'\\n39\\n') WHERE tree_size = 40", settings=SYNC)
    result = run(store, keystore)
    assert [(f.kind, f.position) for f in result.findings] == [("checkpoint", 40)]
    assert "signature" in result.findings[0].detail


def test_checkpoint_signature_replaced(store, keystore, populated, tmp_path):
    other = LocalKeyStore(tmp_path / "attacker").signing_key()
    import base64

    from genai_audit.clickhouse.ledger import checkpoint as notes
    note = str(store.scalar("SELECT note FROM ledger_checkpoints WHERE tree_size = 20"))
    forged = notes.sign(notes.parse_checkpoint(note[: note.rfind("\n\n") + 1]), other)
    store.command("ALTER TABLE ledger_checkpoints UPDATE note = {n:String} "
                  "WHERE tree_size = 20", {"n": forged}, settings=SYNC)
    result = run(store, keystore)
    assert [(f.kind, f.position) for f in result.findings] == [("checkpoint", 20)]
    assert "no signature" in result.findings[0].detail
    assert base64  # the forged note is well-formed, only signed by the wrong key


def test_checkpoint_root_column_altered(store, keystore, populated):
    store.command("ALTER TABLE ledger_checkpoints UPDATE root_hash = toFixedString("
                  "unhex(repeat('ab', 32)), 32) WHERE tree_size = 60", settings=SYNC)
    result = run(store, keystore)
    assert [(f.kind, f.position) for f in result.findings] == [("checkpoint", 60)]
    # the signed note itself is intact, so the records stay anchored by it
    assert not result.warnings


def test_whole_log_and_its_checkpoints_deleted_is_caught_by_an_exported_anchor(
        store, keystore, populated):
    from genai_audit.clickhouse.ledger.export import export_checkpoints, read_anchors
    anchors = read_anchors(export_checkpoints(store, keystore.signing_key().public_key()))
    store.command("ALTER TABLE interactions DELETE WHERE 1", settings=SYNC)
    store.command("ALTER TABLE ledger_checkpoints DELETE WHERE 1", settings=SYNC)
    assert run(store, keystore).ok  # nothing left to contradict...
    result = run(store, keystore, anchors=anchors)  # ...except the auditor's copy
    assert [(f.kind, f.position) for f in result.findings] == [("truncated", 0)]
    assert f"({N} records, 0 still present)" in result.findings[0].detail


def test_tail_and_newest_checkpoint_removed_is_caught_by_an_exported_anchor(
        store, keystore, populated):
    from genai_audit.clickhouse.ledger.export import export_checkpoints, read_anchors
    anchors = read_anchors(export_checkpoints(store, keystore.signing_key().public_key()))
    store.command("ALTER TABLE interactions DELETE WHERE log_index >= 50", settings=SYNC)
    store.command("ALTER TABLE ledger_checkpoints DELETE WHERE tree_size = 60 AND "
                  "source_table = 'interactions'", settings=SYNC)
    # the session's log of logs still signs size 60: the store alone catches it now
    alone = run(store, keystore)
    assert ("checkpoint", 60) in [(f.kind, f.position) for f in alone.findings]
    assert ("truncated", 40) in [(f.kind, f.position) for f in alone.findings]
    store.command("ALTER TABLE ledger_checkpoints DELETE WHERE source_table = 'ledger'",
                  settings=SYNC)
    assert run(store, keystore).ok  # consistent with the remaining checkpoint at 40...
    result = run(store, keystore, anchors=anchors)  # ...but not with the auditor's copy
    assert [(f.kind, f.position) for f in result.findings] == [("truncated", 40)] + [
        ("unanchored", p) for p in range(40, 50)]  # each record that lost its signature
    assert "(20 records, 10 still present)" in result.findings[0].detail


def test_history_rewritten_with_the_signing_key_is_caught_by_an_exported_anchor(
        store, keystore, populated):
    """Whoever holds the key can re-sign a rewritten log; an exported copy still disagrees."""
    import uuid as uuid_mod

    from genai_audit.clickhouse.ledger.export import export_checkpoints, read_anchors
    from genai_audit.clickhouse.ledger.leaf import INTERACTIONS, sql_leaf_hash
    from genai_audit.clickhouse.ledger.log import (
        CHECKPOINT_COLUMNS,
        CHECKPOINTS_TABLE,
        sign_extension,
    )
    anchors = read_anchors(export_checkpoints(store, keystore.signing_key().public_key()))
    store.command("ALTER TABLE interactions UPDATE total_cost = 0 WHERE log_index = 7",
                  settings=SYNC)
    store.command(f"ALTER TABLE interactions UPDATE leaf_hash = {sql_leaf_hash(INTERACTIONS)} "
                  "WHERE 1", settings=SYNC)
    log_id, tenant = store.rows("SELECT any(log_id), any(tenant_id) FROM interactions")[0]
    leaves = [bytes.fromhex(h) for (h,) in store.rows(
        "SELECT hex(leaf_hash) FROM interactions ORDER BY log_index")]
    ids = [uuid_mod.UUID(i) for (i,) in store.rows(
        "SELECT toString(id) FROM interactions ORDER BY log_index")]
    store.command("ALTER TABLE ledger_checkpoints DELETE WHERE 1", settings=SYNC)
    signed = sign_extension(store.database, "interactions", log_id, tenant, 0, [],
                            bytes(32), [(leaf, i.bytes, 0, 0) for leaf, i in zip(leaves, ids)],
                            keystore.signing_key())
    store.insert(CHECKPOINTS_TABLE, [signed.row], CHECKPOINT_COLUMNS)
    assert run(store, keystore).ok  # the store alone is fooled by a key holder...
    result = run(store, keystore, anchors=anchors)  # ...the auditor's copy is not
    assert [(f.kind, f.position) for f in result.findings] == [("checkpoint", N)]
    assert "re-signed" in result.findings[0].detail


def test_rows_dropped_by_retention_are_expected_not_tampering(store, keystore):
    """Old records (retention 1 day, written 2 days late) that the TTL drops are reported as
    expired; a young record deleted alongside them is still named."""
    from datetime import UTC, datetime, timedelta

    from ledger_helpers import ledgered_writer, make_record
    writer = ledgered_writer(store, keystore)
    old = datetime.now(UTC) - timedelta(hours=23, minutes=59, seconds=58)
    records = [make_record(i, event_timestamp=old, retention_days=1, content_retention_days=1)
               for i in range(3)] + [make_record(i) for i in range(3, 6)]
    writer.write(records)
    writer.ledger.close()
    from audit_records import wait_for_engine_time
    wait_for_engine_time(store, old + timedelta(days=1))  # the three old ones are past retention
    store.command("ALTER TABLE interactions DELETE WHERE retention_days = 1 OR log_index = 4",
                  settings=SYNC)  # what the TTL merge does, plus one real deletion
    result = run(store, keystore)
    assert kinds(result) == {("deleted", 4, records[4].id)}
    assert [(w.kind, w.position) for w in result.warnings] == [("expired", 0)]


def _aged_content(store: Store, keystore: LocalKeyStore) -> list[str]:
    """Six records: three whose content retention (1 day) has passed, three fresh."""
    from datetime import UTC, datetime, timedelta

    from ledger_helpers import ledgered_writer, make_record
    writer = ledgered_writer(store, keystore)
    old = datetime.now(UTC) - timedelta(days=2)
    records = [make_record(i, event_timestamp=old, content_retention_days=1)
               for i in range(3)] + [make_record(i) for i in range(3, 6)]
    writer.write(records)
    writer.ledger.close()
    store.command("OPTIMIZE TABLE interactions FINAL")  # the TTL merge, now
    return [r.id for r in records]


def test_content_blanked_by_its_retention_ttl_verifies_clean(store, keystore):
    """The content TTL blanks content on schedule (here at once, the rows being 2 days
    old with 1 day of content retention): leaf v2 covers the content through its digest,
    so the expired rows are intact, not modified."""
    _aged_content(store, keystore)
    assert store.rows("SELECT content_state, full_prompt_text, leaf_version FROM interactions "
                      "WHERE content_retention_days = 1") == [
                          ("expired", "", INTERACTIONS.current)] * 3
    result = run(store, keystore)
    assert result.ok and result.records == 6, result.findings


def test_content_blanked_before_its_retention_passed(store, keystore):
    """Blanking fresh content to look like an expiry is tampering."""
    ids = _aged_content(store, keystore)
    store.command("ALTER TABLE interactions UPDATE full_prompt_text = '', "
                  "full_response_text = '', response_preview = '', content_state = 'expired' "
                  "WHERE id = {id:UUID}", {"id": ids[4]}, settings=SYNC)
    assert kinds(run(store, keystore)) == {("modified", 4, ids[4])}


def test_expired_content_put_back_differently(store, keystore):
    """After expiry only the TTL's defaults are accepted: content re-inserted is named."""
    ids = _aged_content(store, keystore)
    store.command("ALTER TABLE interactions UPDATE full_prompt_text = 'planted' "
                  "WHERE id = {id:UUID}", {"id": ids[1]}, settings=SYNC)
    assert kinds(run(store, keystore)) == {("modified", 1, ids[1])}


def test_content_digest_forged_to_match_altered_content(store, keystore, populated):
    """Rewriting the digest (and the row's leaf hash) to fit altered content still breaks
    the signed leaf."""
    target = id_at(store, 27)
    store.command("ALTER TABLE interactions UPDATE full_response_text = 'rewritten' "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    store.command("ALTER TABLE interactions UPDATE content_digest = SHA256(concat("
                  "toString(length(content_state)), ':', content_state, ',', "
                  "toString(length(response_preview)), ':', response_preview, ',', "
                  "toString(length(full_prompt_text)), ':', full_prompt_text, ',', "
                  "toString(length(full_response_text)), ':', full_response_text, ',')) "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    store.command(f"ALTER TABLE interactions UPDATE leaf_hash = {sql_leaf_hash(INTERACTIONS)} "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    assert store.scalar("SELECT leaf_hash = " + sql_leaf_hash(INTERACTIONS)
                        + " FROM interactions WHERE id = {id:UUID}", {"id": target})
    assert kinds(run(store, keystore)) == {("modified", 27, target)}


def test_rows_of_leaf_version_2_verify_next_to_version_3(store, keystore):
    """Migration 009 added columns and leaf version 3 covers them: rows a version-2 writer
    stored (before the columns existed, so they hold the defaults) still verify."""
    import dataclasses

    from ledger_helpers import make_record

    from genai_audit.clickhouse.ledger.log import Ledger
    from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter

    new = set(INTERACTIONS.columns(3)) - set(INTERACTIONS.columns(2))
    assert new == {"cache_write_tokens", "reasoning_tokens", "producers", "merged_span_ids"}
    v2 = dataclasses.replace(INTERACTIONS, versions={1: INTERACTIONS.versions[1],
                                                      2: INTERACTIONS.versions[2]},
                             not_covered=INTERACTIONS.not_covered | new)
    log = Ledger(store, keystore.signing_key(), schema=v2, row_columns=COLUMNS,
                 checkpoint_seconds=3600)
    InteractionWriter(store, log).write([make_record(i) for i in range(3)])
    log.close()
    populate(store, keystore, n=3, batch=3)
    assert sorted(r[0] for r in store.rows("SELECT leaf_version FROM interactions")) == [
        2, 2, 2, 3, 3, 3]
    result = run(store, keystore)
    assert result.ok and result.records == 6, result.findings
    # and a v3 row whose new column is altered is caught
    store.command("ALTER TABLE interactions UPDATE reasoning_tokens = 7 "
                  "WHERE leaf_version = 3 AND log_index = 0", settings={"mutations_sync": 2})
    assert not run(store, keystore).ok
