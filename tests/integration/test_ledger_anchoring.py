"""Regression tests for issue 16.3 (deleting checkpoints must not turn tampering into
warnings; printed ids are signed) and issue 15.2 (retention is not tampering, and tampering
is never called retention).

Time: verify judges expiry and the age of unsigned records on an injected ``ManualClock``.
ClickHouse's own TTL runs on the real clock, so these tests either write records already
past their retention (the TTL drops them at insert: said where it happens) or delete rows
with ``ALTER TABLE ... DELETE`` to stand in for the TTL merge that would drop them later.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import ledgered_writer, make_record, populate

from genai_audit.clickhouse import holds
from genai_audit.clickhouse.ledger import verify as v
from genai_audit.clickhouse.ledger.leaf import INTERACTIONS, sql_leaf_hash
from genai_audit.clickhouse.store import Store
from genai_audit.clock import ManualClock
from genai_audit.keystore import LocalKeyStore

pytestmark = pytest.mark.integration
SYNC = {"mutations_sync": 2}


def run(store: Store, keystore: LocalKeyStore, clock: ManualClock | None = None,
        **kwargs: object) -> v.VerifyResult:
    verifier = v.Verifier(store, keystore.signing_key().public_key(),
                          clock=clock or ManualClock(datetime.now(UTC)))
    return verifier.run(**kwargs)  # type: ignore[arg-type]


def later(seconds: float) -> ManualClock:
    return ManualClock(datetime.now(UTC) + timedelta(seconds=seconds))


def ids_named(result: v.VerifyResult) -> set[str | None]:
    return {f.record_id for f in result.findings}


def log_of(store: Store, tenant: str) -> str:
    return str(store.scalar("SELECT any(log_id) FROM interactions WHERE tenant_id = {t:String}",
                            {"t": tenant}))


# -- issue 16.3 ---------------------------------------------------------------------------

def test_log_checkpoints_deleted_and_record_rewritten_fails_naming_the_record(store, keystore):
    """Repro: delete one log's checkpoint rows, edit a record and recompute its leaf hash.
    It used to be INTACT with warnings; the writer session's log of logs still signs the
    log's size and root, so verify fails and names the record among those that lost their
    signature."""
    populate(store, keystore, n=40, tenants=("acme", "globex"))
    acme = log_of(store, "acme")
    target = str(store.scalar("SELECT toString(id) FROM interactions WHERE log_id = {l:String} "
                              "AND log_index = 7", {"l": acme}))
    store.command("ALTER TABLE ledger_checkpoints DELETE WHERE log_id = {l:String}",
                  {"l": acme}, settings=SYNC)
    store.command("ALTER TABLE interactions UPDATE response_preview = 'rewritten' "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    store.command(f"ALTER TABLE interactions UPDATE leaf_hash = {sql_leaf_hash(INTERACTIONS)} "
                  "WHERE id = {id:UUID}", {"id": target}, settings=SYNC)
    result = run(store, keystore)  # at once: no waiting for the checkpoint interval
    assert not result.ok
    assert target in ids_named(result)
    kinds = {(f.kind, f.log_id) for f in result.findings}
    assert ("checkpoint", acme) in kinds and ("modified", acme) in kinds
    assert all(f.log_id == acme for f in result.findings)  # globex is untouched
    assert any("checkpoints deleted" in f.detail for f in result.findings)


def test_all_checkpoints_truncated_fails_once_records_outlive_the_interval(store, keystore):
    """Repro: TRUNCATE ledger_checkpoints (the logs of logs go too). Records with ledger
    positions and no signature are a warning only while a writer could still sign them."""
    populate(store, keystore, n=30, tenants=("acme", "globex"))
    store.command("TRUNCATE TABLE ledger_checkpoints")
    fresh = run(store, keystore)
    assert fresh.ok and {w.kind for w in fresh.warnings} == {"unanchored"}
    result = run(store, keystore, later(v.UNSIGNED_GRACE + 5))
    assert not result.ok
    assert sorted((f.kind, f.position) for f in result.findings) == [("unanchored", 0)] * 2
    assert "were deleted, or its writer stopped" in result.findings[0].detail


def test_a_gap_in_the_log_of_logs_is_a_finding(store, keystore):
    """Deleting the log of logs' middle checkpoints (to hide which logs it signed then)
    breaks its signed chain of previous sizes."""
    populate(store, keystore, n=60)  # rounds at 20, 40, 60: log of logs sizes 1, 2, 3
    assert store.rows("SELECT tree_size, prev_size FROM ledger_checkpoints "
                      "WHERE source_table = 'ledger' ORDER BY tree_size") == [(1, 0), (2, 1),
                                                                             (3, 2)]
    store.command("ALTER TABLE ledger_checkpoints DELETE WHERE source_table = 'ledger' "
                  "AND tree_size = 2", settings=SYNC)
    result = run(store, keystore)
    assert [(f.kind, f.position) for f in result.findings] == [("checkpoint", 1)]
    assert result.findings[0].log_id.startswith("ledger/interactions/")
    assert "positions 1..1 were deleted" in result.findings[0].detail


def test_printed_id_of_a_deleted_record_is_never_an_unsigned_decoy(store, keystore):
    """Repro: delete a record and put a decoy id in its place in the checkpoint's record
    list. The list is signed now: the edit is a finding and the decoy is never printed."""
    ids = populate(store, keystore, n=60)  # signed at 20, 40, 60
    target = str(store.scalar("SELECT toString(id) FROM interactions WHERE log_index = 12"))
    decoy = str(uuid.uuid4())
    store.command("ALTER TABLE interactions DELETE WHERE log_index = 12", settings=SYNC)
    store.command("ALTER TABLE ledger_checkpoints UPDATE record_ids = concat("
                  "substring(record_ids, 1, 192), toString(UUIDStringToNum({d:String})), "
                  "substring(record_ids, 209)) WHERE tree_size = 20 "
                  "AND source_table = 'interactions'", {"d": decoy}, settings=SYNC)
    result = run(store, keystore)
    assert not result.ok
    text = repr(result)
    assert decoy not in text
    assert ("checkpoint", 20) in {(f.kind, f.position) for f in result.findings}
    deleted = [f for f in result.findings if f.kind == "deleted"]
    assert [f.position for f in deleted] == [12]
    assert deleted[0].record_id in (None, target) and target in ids


def test_deleted_record_is_named_by_the_signed_id(store, keystore):
    populate(store, keystore, n=40)
    target = str(store.scalar("SELECT toString(id) FROM interactions WHERE log_index = 25"))
    store.command("ALTER TABLE interactions DELETE WHERE log_index = 25", settings=SYNC)
    result = run(store, keystore)
    assert [(f.kind, f.position, f.record_id) for f in result.findings] == [
        ("deleted", 25, target)]


# -- issue 15.2 ---------------------------------------------------------------------------

def _write(store: Store, keystore: LocalKeyStore, records: list) -> None:
    writer = ledgered_writer(store, keystore)
    writer.write(records)
    writer.ledger.close()


def _aging(n_old: int = 3, n_new: int = 3) -> list:
    """Retention 1 day: ``n_old`` records stamped 1 day - 45 s ago (they expire 45 s from
    now), then ``n_new`` fresh ones with 365 days."""
    old = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=45)
    return ([make_record(i, event_timestamp=old, retention_days=1, content_retention_days=1)
             for i in range(n_old)]
            + [make_record(i) for i in range(n_old, n_old + n_new)])


def test_oldest_rows_expiring_is_not_tampering(store, keystore):
    """Repro (gateway with GENAI_AUDIT_RETENTION_DAYS=1): INTACT, then, once the oldest rows
    expire and the TTL drops them, it used to say TAMPERED next to an EXPIRED warning."""
    records = _aging()
    _write(store, keystore, records)
    assert run(store, keystore).ok
    # the TTL merge a minute later (ClickHouse's TTL runs on the real clock: DELETE stands in)
    store.command("ALTER TABLE interactions DELETE WHERE retention_days = 1", settings=SYNC)
    result = run(store, keystore, later(60))
    assert result.ok, result.findings
    assert [(w.kind, w.position) for w in result.warnings] == [("expired", 0)]


def test_rows_expired_on_arrival_are_not_tampering(store, keystore):
    """A backfilled span already past its retention: the ledger signs its position, then
    the TTL drops it (at insert, or, with this table's ttl_only_drop_parts, at the part's
    next TTL merge: the DELETE stands in for it), possibly before verify ever saw it."""
    stale = datetime.now(UTC) - timedelta(days=3)
    records = [make_record(0)] + [make_record(i, event_timestamp=stale, retention_days=1)
                                  for i in (1, 2)] + [make_record(3)]
    _write(store, keystore, records)
    store.command("ALTER TABLE interactions DELETE WHERE retention_days = 1", settings=SYNC)
    assert store.scalar("SELECT count() FROM interactions") == 2
    result = run(store, keystore)
    assert result.ok, result.findings
    assert [(w.kind, w.position) for w in result.warnings] == [("expired", 1)]


def test_expiry_in_the_middle_of_a_log_spanning_retention_classes(store, keystore):
    old = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=45)
    records = [make_record(i, event_timestamp=old, retention_days=1 if i % 2 else 30)
               for i in range(6)]
    _write(store, keystore, records)
    store.command("ALTER TABLE interactions DELETE WHERE retention_days = 1", settings=SYNC)
    result = run(store, keystore, later(60))
    assert result.ok and [w.kind for w in result.warnings] == ["expired"]


def test_unexpired_row_deleted_is_tampering_named_by_position(store, keystore):
    records = _aging()
    _write(store, keystore, records)
    store.command("ALTER TABLE interactions DELETE WHERE retention_days = 1 OR log_index = 4",
                  settings=SYNC)
    result = run(store, keystore, later(60))
    assert [(f.kind, f.position, f.record_id) for f in result.findings] == [
        ("deleted", 4, records[4].id)]
    assert "has not passed" in result.findings[0].detail
    # and a row deleted 30 s before its expiry is not "expired" either
    early = run(store, keystore, later(15))
    assert {(f.kind, f.position) for f in early.findings} == {
        ("deleted", 0), ("deleted", 1), ("deleted", 2), ("deleted", 4)}


def test_held_row_gone_is_tampering(store, keystore):
    """A tenant-wide legal hold copies the records; the originals may expire, the copies must
    stay. Copy deleted too: a finding, by position, although its retention passed."""
    records = _aging()
    _write(store, keystore, records)
    hold = holds.add_hold(store, keystore, tenant_id="acme", reason="litigation", actor="legal")
    assert hold.rows_held == 6
    store.command("ALTER TABLE interactions DELETE WHERE retention_days = 1", settings=SYNC)
    kept = run(store, keystore, later(60))
    assert kept.ok and not kept.warnings, kept  # expired originals, verified held copies
    store.command("ALTER TABLE held_interactions DELETE WHERE id = {id:UUID}",
                  {"id": records[1].id}, settings=SYNC)
    result = run(store, keystore, later(60))
    assert [(f.kind, f.position, f.record_id) for f in result.findings] == [
        ("deleted", 1, records[1].id)]
    assert hold.hold_id in result.findings[0].detail
    # released: the copies go and the expiry is ordinary retention again
    holds.release_hold(store, hold.hold_id, actor="legal", reason="settled")
    assert run(store, keystore, later(60)).ok


def test_expiry_claimed_for_a_future_dated_row_is_tampering(store, keystore):
    """Deleting a 365-day record and editing its checkpoint's expiry list to say it expired
    long ago: the expiry list is signed, so the claim fails, and the row is named."""
    records = [make_record(i) for i in range(4)]
    _write(store, keystore, records)
    store.command("ALTER TABLE interactions DELETE WHERE log_index = 2", settings=SYNC)
    store.command("ALTER TABLE ledger_checkpoints UPDATE record_expires = concat("
                  "substring(record_expires, 1, 16), unhex('0000000000000001'), "
                  "substring(record_expires, 25)) WHERE source_table = 'interactions'",
                  settings=SYNC)
    result = run(store, keystore, later(60))
    assert not result.ok
    assert ("deleted", 2, records[2].id) in {(f.kind, f.position, f.record_id)
                                             for f in result.findings}
    assert ("checkpoint", 4) in {(f.kind, f.position) for f in result.findings}
    assert not result.warnings


def test_cli_exit_codes_for_expiry_and_for_a_forged_expiry(store, store_dsn):
    """Through `genai-audit verify` (system clock): records already past their retention
    and gone exit 0 with an EXPIRED note; the same with a forged expiry exits 1."""
    from click.testing import CliRunner

    from genai_audit.cli.main import cli
    db = ["--dsn", store_dsn, "--database", store.database]
    runner = CliRunner()
    assert runner.invoke(cli, ["init", *db], catch_exceptions=False).exit_code == 0
    keys = LocalKeyStore(store_dsn.removeprefix("chdb://") + "-keys")
    stale = datetime.now(UTC) - timedelta(days=3)
    _write(store, keys, [make_record(i, event_timestamp=stale, retention_days=1)
                         for i in range(2)] + [make_record(i) for i in range(2, 4)])
    store.command("ALTER TABLE interactions DELETE WHERE retention_days = 1", settings=SYNC)
    ok = runner.invoke(cli, ["verify", *db], catch_exceptions=False)
    assert ok.exit_code == 0, ok.stdout
    assert ok.stdout.startswith("INTACT") and "warning: EXPIRED" in ok.stdout
    store.command("ALTER TABLE interactions DELETE WHERE log_index = 3", settings=SYNC)
    store.command("ALTER TABLE ledger_checkpoints UPDATE record_expires = concat("
                  "substring(record_expires, 1, 24), unhex('0000000000000001')) "
                  "WHERE source_table = 'interactions'", settings=SYNC)
    bad = runner.invoke(cli, ["verify", *db], catch_exceptions=False)
    assert bad.exit_code == 1 and bad.stdout.startswith("TAMPERED")
    assert "DELETED" in bad.stdout and "position 3" in bad.stdout
