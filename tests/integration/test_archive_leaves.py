"""Archived rows against the ledger: ``verify --archive`` recomputes every archived row's leaf
from the Parquet and matches it against the leaf the store's signed checkpoints hold.

The tampering here happens in the store BEFORE archiving, so the archive copies it faithfully:
every object hash and the manifest signature are valid, and only the leaf check can tell.
Real parts throughout: chDB, the S3 protocol (moto on 127.0.0.1) and a file:// directory.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from audit_records import KEY_ID, SECRET, wait_for_engine_time, write_records

from genai_audit.clickhouse.archive import archive, load_manifest
from genai_audit.clickhouse.archive_location import ArchiveLocation
from genai_audit.clickhouse.archive_verify import attach_archive, verify_archive
from genai_audit.clickhouse.ledger.leaf import INTERACTIONS, sql_leaf_hash

pytestmark = pytest.mark.integration

SYNC = {"mutations_sync": 2}


def _old() -> datetime:
    return datetime.now(UTC) - timedelta(days=100)


def _cutoff() -> datetime:
    return datetime.now(UTC) - timedelta(days=60)


def _place(store, record_id: str) -> tuple[str, int]:
    log_id, position = store.rows("SELECT log_id, log_index FROM interactions "
                                  "WHERE id = {id:UUID}", {"id": record_id})[0]
    return str(log_id), int(position)


def _found(result) -> list[tuple[str, str | None, str | None, int | None]]:
    return sorted((p.kind, p.record_id, p.log_id, p.position) for p in result.problems)


@pytest.fixture
def s3_location(s3_endpoint, s3_bucket) -> ArchiveLocation:
    _, bucket = s3_bucket
    return ArchiveLocation.parse(f"s3://{bucket}/prod", endpoint_url=s3_endpoint,
                                 access_key_id=KEY_ID, secret_access_key=SECRET)


def test_an_intact_archive_verifies_every_leaf(store, keystore, make_span, s3_location):
    ids = write_records(store, keystore, make_span, _old(), count=4, ledger=True)
    ids += write_records(store, keystore, make_span, _old(), count=3, ledger=True,
                         **{"tenant.id": "globex"})
    write_records(store, keystore, make_span, datetime.now(UTC), ledger=True)  # hot: stays
    archive(store, keystore, s3_location, before=_cutoff(), settle_seconds=0)
    result = verify_archive(store, s3_location, keystore.signing_key().public_key())
    assert result.ok, [str(p) for p in result.problems]
    assert (result.objects, result.rows, result.leaves, result.logs) == (2, 7, 7, 2)
    assert not result.warnings
    # the signed leaves are authenticated, not trusted: edit one log's list of leaves
    globex_log, _ = _place(store, ids[-1])
    store.command("ALTER TABLE ledger_checkpoints UPDATE leaf_hashes = reverse(leaf_hashes) "
                  "WHERE log_id = {l:String}", {"l": globex_log}, settings=SYNC)
    result = verify_archive(store, s3_location, keystore.signing_key().public_key())
    assert sorted((p.kind, p.record_id) for p in result.problems) == sorted(
        [("checkpoint", None), *(("not_in_ledger", rid) for rid in ids[4:])])
    [altered] = [p for p in result.problems if p.kind == "checkpoint"]
    assert altered.key == "ledger_checkpoints" and altered.log_id == globex_log


def test_a_row_modified_before_archiving_is_named(store, keystore, make_span, s3_location):
    ids = write_records(store, keystore, make_span, _old(), count=5, ledger=True)
    cost_victim, rehashed_victim, replaced = ids[1], ids[3], ids[4]
    # a row swapped for another record at its position
    impostor = str(uuid.uuid4())
    store.command("INSERT INTO interactions SELECT * REPLACE ({new:UUID} AS id) FROM "
                  "(SELECT * FROM interactions WHERE id = {id:UUID})",
                  {"id": replaced, "new": impostor})
    log_id, replaced_at = _place(store, replaced)
    store.command("ALTER TABLE interactions DELETE WHERE id = {id:UUID}", {"id": replaced},
                  settings=SYNC)
    # a metadata field changed in place...
    store.command("ALTER TABLE interactions UPDATE total_cost = total_cost + 1 "
                  "WHERE id = {id:UUID}", {"id": cost_victim}, settings=SYNC)
    # ...and a content field changed by someone who also recomputed the row's leaf_hash
    store.command("ALTER TABLE interactions UPDATE full_response_text = 'all is well' "
                  "WHERE id = {id:UUID}", {"id": rehashed_victim}, settings=SYNC)
    store.command(f"ALTER TABLE interactions UPDATE leaf_hash = {sql_leaf_hash(INTERACTIONS)} "
                  "WHERE id = {id:UUID}", {"id": rehashed_victim}, settings=SYNC)
    run = archive(store, keystore, s3_location, before=_cutoff(), settle_seconds=0)
    result = verify_archive(store, s3_location, keystore.signing_key().public_key())
    # the archive is a faithful copy: no object or manifest problem, only the two rows
    assert _found(result) == sorted([("modified", cost_victim, *_place(store, cost_victim)),
                                     ("modified", rehashed_victim,
                                      *_place(store, rehashed_victim)),
                                     ("modified", impostor, log_id, replaced_at)])
    assert {p.key for p in result.problems} == {run.written[0].key}
    details = {p.record_id: p.detail for p in result.problems}
    assert "stored leaf_hash no longer matches" in details[cost_victim]
    assert "stored leaf_hash no longer matches" not in details[rehashed_victim]
    assert f"position {replaced_at} was signed for record {replaced}" in details[impostor]
    assert result.leaves == 5 and result.rows == 5


def test_rows_written_around_the_ledger_are_not_in_ledger(store, keystore, make_span,
                                                          tmp_path):
    signed = write_records(store, keystore, make_span, _old(), count=2, ledger=True)
    around = write_records(store, keystore, make_span, _old(), count=2)  # InteractionWriter only
    # and a row forged into the signed log, at a position no checkpoint covers
    log_id, _ = _place(store, signed[0])
    forged = str(uuid.uuid4())
    store.command("INSERT INTO interactions SELECT * REPLACE ({forged:UUID} AS id, "
                  "toUInt64(7) AS log_index) FROM (SELECT * FROM interactions "
                  "WHERE id = {id:UUID})",
                  {"id": signed[0], "forged": forged})
    location = ArchiveLocation.parse(f"file://{tmp_path}/arch")
    archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    manifest = load_manifest(store, location, keystore)
    # rows around the ledger have no log to name
    assert [n["log_id"] for n in manifest.ledger_checkpoint["logs"]] == [log_id]
    result = verify_archive(store, location, keystore.signing_key().public_key())
    assert _found(result) == sorted([*(("not_in_ledger", rid, None, None) for rid in around),
                                     ("not_in_ledger", forged, log_id, 7)])
    details = {p.record_id: p.detail for p in result.problems}
    assert all("written around the ledger" in details[rid] for rid in around)
    assert "no valid signed checkpoint of this log covers this position" in details[forged]
    assert result.leaves == 5


def test_a_log_position_archived_twice_is_a_duplicate(store, keystore, make_span, tmp_path):
    ids = write_records(store, keystore, make_span, _old(), count=4, ledger=True)
    store.command("INSERT INTO interactions SELECT * FROM interactions WHERE id = {id:UUID}",
                  {"id": ids[2]})  # an exact copy of a signed row
    store.command("ALTER TABLE interactions UPDATE leaf_version = 9 WHERE id = {id:UUID}",
                  {"id": ids[0]}, settings=SYNC)  # a version no reader knows
    location = ArchiveLocation.parse(f"file://{tmp_path}/arch")
    run = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    result = verify_archive(store, location, keystore.signing_key().public_key())
    assert _found(result) == sorted([("duplicate", ids[2], *_place(store, ids[2])),
                                     ("unverifiable", ids[0], *_place(store, ids[0]))])
    details = {p.kind: p.detail for p in result.problems}
    assert "another copy of the signed record" in details["duplicate"]
    assert run.written[0].key in details["duplicate"]
    assert "unknown leaf version" in details["unverifiable"]
    assert result.leaves == 5
    # the same rows again in a later object (a second archive of the month): all duplicates
    store.command("INSERT INTO interactions SELECT * REPLACE (now64(6) AS ingested_at) "
                  "FROM (SELECT * FROM interactions WHERE id = {id:UUID})", {"id": ids[1]})
    again = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    assert [o.rows for o in again.written] == [1]
    result = verify_archive(store, location, keystore.signing_key().public_key())
    [late] = [p for p in result.problems if p.key == again.written[0].key]
    assert (late.kind, late.record_id) == ("duplicate", ids[1])
    assert run.written[0].key in late.detail


def test_the_archive_proves_rows_retention_dropped(store, keystore, make_span, tmp_path):
    from genai_audit.clickhouse.policies import set_policy
    from genai_audit.clickhouse.retention import enforce_retention
    from genai_audit.processor.retention import RetentionPolicy

    # 101 days of retention, records 101 days old: still valid for a few seconds
    set_policy(store, "acme", RetentionPolicy(101), changed_by="dpo", reason="test")
    expiring = datetime.now(UTC) - timedelta(days=101, seconds=-4)
    ids = write_records(store, keystore, make_span, expiring, count=3, ledger=True)
    location = ArchiveLocation.parse(f"file://{tmp_path}/arch")
    run = archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    assert run.rows == 3
    wait_for_engine_time(store, expiring + timedelta(days=101))  # the TTL's clock
    enforce_retention(store)
    assert store.scalar("SELECT count() FROM interactions") == 0  # the hot rows are gone
    public = keystore.signing_key().public_key()
    result = verify_archive(store, location, public)
    assert result.ok and result.leaves == 3, [str(p) for p in result.problems]
    # the checkpoints are what proves them: delete them and the archive cannot be proven
    log_id = load_manifest(store, location, keystore).ledger_checkpoint["logs"][0]["log_id"]
    store.command("ALTER TABLE ledger_checkpoints DELETE WHERE log_id = {l:String}",
                  {"l": log_id}, settings=SYNC)
    result = verify_archive(store, location, public)
    unproven = [(p.record_id, p.log_id, p.position) for p in result.problems
                if p.kind == "not_in_ledger"]
    assert sorted(unproven, key=lambda u: u[2]) == [(rid, log_id, i) for i, rid in
                                                    enumerate(ids)]
    [named] = [p for p in result.problems if p.kind == "checkpoint"]
    assert named.key == "manifest.json" and "no longer holds this checkpoint" in named.detail


def test_both_commands_exit_1_naming_the_row(store, keystore, make_span, tmp_path, monkeypatch,
                                             capsys):
    from genai_audit.cli.main import main

    monkeypatch.setenv("GENAI_AUDIT_DSN", store.dsn)
    monkeypatch.setenv("GENAI_AUDIT_DATABASE", store.database)
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(keystore.directory))
    ids = write_records(store, keystore, make_span, _old(), count=3, ledger=True)
    url = f"file://{tmp_path}/arch"
    archive(store, keystore, ArchiveLocation.parse(url), before=_cutoff(), settle_seconds=0)
    assert main(["verify", "--archive", url]) == 0
    assert "3 leaves checked against the ledger's signed checkpoints (1 logs)" in (
        capsys.readouterr().out)
    store.command("ALTER TABLE interactions UPDATE model = 'gpt-cheap' WHERE id = {id:UUID}",
                  {"id": ids[0]}, settings=SYNC)
    again = f"file://{tmp_path}/arch2"  # archived after the change: a faithful copy of it
    archive(store, keystore, ArchiveLocation.parse(again), before=_cutoff(), settle_seconds=0)
    log_id, position = _place(store, ids[0])
    outputs = []
    for args in (["verify", "--archive", again], ["archive", "verify", again]):
        assert main(args) == 1
        out = capsys.readouterr().out
        assert "1 problem(s)" in out
        assert f"modified: record {ids[0]}, log {log_id} position {position}: archived " \
               "columns differ from the leaf the ledger signed" in out
        outputs.append(out)
    assert outputs[0] == outputs[1]


def test_content_blanked_by_its_retention_ttl_before_archiving_verifies(store, keystore,
                                                                       make_span, tmp_path):
    from genai_audit.clickhouse.policies import set_policy
    from genai_audit.clickhouse.retention import enforce_retention
    from genai_audit.processor.retention import RetentionPolicy

    set_policy(store, "acme", RetentionPolicy(365, 1), changed_by="dpo", reason="minimise")
    ids = write_records(store, keystore, make_span, _old(), count=2, ledger=True)
    enforce_retention(store)  # the content TTL blanks prompt/response; metadata stays
    location = ArchiveLocation.parse(f"file://{tmp_path}/arch")
    archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    attach_archive(store, location, keystore.signing_key().public_key())
    assert store.rows("SELECT DISTINCT content_state, full_prompt_text, leaf_version "
                      "FROM archived_interactions") == [("expired", "", INTERACTIONS.current)]
    result = verify_archive(store, location, keystore.signing_key().public_key())
    assert result.ok and result.leaves == len(ids), [str(p) for p in result.problems]


def test_rows_of_leaf_version_1_verify_next_to_version_2(store, keystore, make_span, tmp_path):
    import dataclasses

    from ledger_helpers import make_record

    from genai_audit.clickhouse.archive_leaves import _readable
    from genai_audit.clickhouse.ledger.log import Ledger
    from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter

    # a writer from before the content digest: leaf version 1
    later = set(INTERACTIONS.columns()) - set(INTERACTIONS.written_columns(1))
    v1 = dataclasses.replace(INTERACTIONS, versions={1: INTERACTIONS.versions[1]},
                             not_covered=INTERACTIONS.not_covered | later - {"content_digest"})
    log = Ledger(store, keystore.signing_key(), schema=v1, row_columns=COLUMNS,
                 checkpoint_seconds=3600)
    InteractionWriter(store, log).write([make_record(i, event_timestamp=_old())
                                         for i in range(2)])
    log.close()
    write_records(store, keystore, make_span, _old(), count=2, ledger=True)  # current
    location = ArchiveLocation.parse(f"file://{tmp_path}/arch")
    archive(store, keystore, location, before=_cutoff(), settle_seconds=0)
    assert sorted(r[0] for r in store.rows("SELECT leaf_version FROM interactions")) == [
        1, 1, INTERACTIONS.current, INTERACTIONS.current]
    result = verify_archive(store, location, keystore.signing_key().public_key())
    assert result.ok and (result.leaves, result.logs) == (4, 2)
    # an object archived before the digest column existed can still check its v1 rows
    names = set(INTERACTIONS.columns(1))
    assert set(_readable(INTERACTIONS, names).versions) == {1}
    assert set(_readable(INTERACTIONS, names | {"content_digest"}).versions) == {1, 2}
    assert set(_readable(INTERACTIONS, set(INTERACTIONS.columns())
                         | set(INTERACTIONS.written_columns())).versions) == {1, 2, 3}
