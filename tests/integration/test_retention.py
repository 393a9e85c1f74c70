"""Per-tenant retention, content-only expiry and legal holds on the real embedded engine.

Records are written through the real pipeline with a backdated event time and a policy of one
day, so they are still valid when inserted (an already-expired row is dropped at insert) and
expire a few seconds later; ``enforce_retention`` then has ClickHouse apply the TTLs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from audit_records import wait_for_engine_time, write_records

from genai_audit.clickhouse.holds import (
    HoldError,
    add_hold,
    held_ids,
    list_holds,
    release_hold,
    sweep_holds,
)
from genai_audit.clickhouse.policies import current_policies, policy_history, set_policy
from genai_audit.clickhouse.retention import enforce_retention, overdue, retention_summary
from genai_audit.processor.retention import RetentionPolicy

pytestmark = pytest.mark.integration

EXPIRES_IN_S = 3


_handed_out: list[datetime] = []


def _about_to_expire() -> datetime:
    at = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=EXPIRES_IN_S)
    _handed_out.append(at)
    return at


def _wait_for_expiry(store) -> None:
    """Until every record stamped by ``_about_to_expire`` is past its 1-day (row or content)
    TTL on the engine's clock, the clock the TTL reads."""
    wait_for_engine_time(store, max(_handed_out) + timedelta(days=1))


def _no_background_ttl_merges(store):
    """Keep ClickHouse's own TTL merges away from this test's table (OPTIMIZE still works)."""
    store.command("ALTER TABLE interactions MODIFY SETTING max_number_of_merges_with_ttl_in_pool = 0")


def _ids(store, table="interactions"):
    return {str(r[0]) for r in store.rows(f"SELECT DISTINCT id FROM {table}")}


def test_policy_changes_are_recorded_and_stamped_per_tenant(store, keystore, make_span):
    set_policy(store, "acme", RetentionPolicy(400, 90), changed_by="dpo", reason="contract")
    set_policy(store, "acme", RetentionPolicy(730, 30), changed_by="cto", reason="SOC2 audit")
    history = policy_history(store, "acme")
    assert [(c.policy, c.previous, c.changed_by) for c in history] == [
        (RetentionPolicy(400, 90), None, "dpo"),
        (RetentionPolicy(730, 30), RetentionPolicy(400, 90), "cto")]
    assert current_policies(store)["acme"] == RetentionPolicy(730, 30)
    now = datetime.now(UTC)
    write_records(store, keystore, make_span, now)
    write_records(store, keystore, make_span, now, **{"tenant.id": "globex"})
    rows = store.rows("SELECT tenant_id, retention_days, content_retention_days "
                      "FROM interactions ORDER BY tenant_id")
    assert rows == [("acme", 730, 30), ("globex", 365, 365)]  # globex: configured default


def test_the_exporter_stamps_the_stored_policy(store, make_span):
    from genai_audit.config import Settings
    from genai_audit.exporter.span_exporter import ClickHouseSpanExporter

    set_policy(store, "clinic", RetentionPolicy(2190, 30), changed_by="dpo", reason="HIPAA")
    set_policy(store, "*", RetentionPolicy(400), changed_by="dpo", reason="default")
    settings = Settings.load({"keystore_dir": str(store_keys(store))}, env={})
    exporter = ClickHouseSpanExporter(settings, store=store)  # builds its own pipeline
    exporter.export([make_span(**{"tenant.id": "clinic"}), make_span()])
    assert store.rows("SELECT tenant_id, retention_days, content_retention_days "
                      "FROM interactions ORDER BY tenant_id") == [("acme", 400, 400),
                                                                  ("clinic", 2190, 30)]
    exporter.shutdown()  # stops the ledger's checkpoint ticker before the database goes


def store_keys(store):
    import tempfile

    return tempfile.mkdtemp(prefix="keys-")


def test_invalid_policies_are_refused(store):
    with pytest.raises(ValueError, match="content retention"):
        RetentionPolicy(30, 60)
    with pytest.raises(ValueError, match="1..10950"):
        RetentionPolicy(0)
    with pytest.raises(ValueError, match="reason"):
        set_policy(store, "acme", RetentionPolicy(30), changed_by="x", reason=" ")
    assert policy_history(store) == []


def test_expired_records_disappear_and_others_stay(store, keystore, make_span):
    set_policy(store, "shortlived", RetentionPolicy(1), changed_by="ops", reason="test")
    short = {"tenant.id": "shortlived"}
    # one insert, so one part: 3 rows expire in seconds, 2 a minute later
    soon, later_at = _about_to_expire(), datetime.now(UTC) - timedelta(days=1, seconds=-60)
    ids = write_records(store, keystore, make_span, [soon] * 3 + [later_at] * 2, **short)
    doomed, later = ids[:3], ids[3:]
    kept = write_records(store, keystore, make_span, _about_to_expire(), count=2)  # acme: 365d
    assert _ids(store) == set(doomed + later + kept)
    # Background TTL merges would get there too, in their own time (merge_with_ttl_timeout,
    # load); keep them out to show that maintain's enforcement does not depend on them.
    _no_background_ttl_merges(store)
    _wait_for_expiry(store)
    assert [(r, c) for _, r, c in overdue(store)] == [(3, 3)]
    assert _ids(store) == set(doomed + later + kept)  # past due but still there
    result = enforce_retention(store)  # applies the TTLs now, row by row
    assert result.rows_expired == 3 and len(result.partitions) == 1
    assert _ids(store) == set(later + kept)
    assert overdue(store) == []


def test_a_fully_expired_partition_is_dropped(store, keystore, make_span):
    set_policy(store, "shortlived", RetentionPolicy(1), changed_by="ops", reason="test")
    write_records(store, keystore, make_span, _about_to_expire(), count=3,
                  **{"tenant.id": "shortlived"})
    kept = write_records(store, keystore, make_span, _about_to_expire())
    _wait_for_expiry(store)
    enforce_retention(store)  # ClickHouse may have dropped the part already: either way
    assert _ids(store) == set(kept)


def test_content_only_expiry_keeps_metadata(store, keystore, make_span):
    set_policy(store, "acme", RetentionPolicy(30, 1), changed_by="dpo", reason="minimise")
    [rid] = write_records(store, keystore, make_span, _about_to_expire())
    before = store.rows("SELECT full_prompt_text, content_state, prompt_hash FROM interactions")
    assert before[0][0] and before[0][1] == "encrypted"
    _no_background_ttl_merges(store)  # see the test above
    _wait_for_expiry(store)
    assert [(r, c) for _, r, c in overdue(store)] == [(0, 1)]
    assert enforce_retention(store).contents_expired == 1
    after = store.rows("SELECT toString(id), full_prompt_text, full_response_text, "
                       "response_preview, content_state, prompt_hash, prompt_tokens, tenant_id "
                       "FROM interactions")
    assert after == [(rid, "", "", "", "expired", before[0][2], 10, "acme")]


def test_held_records_survive_their_ttl_until_released(store, keystore, make_span):
    set_policy(store, "acme", RetentionPolicy(1), changed_by="ops", reason="test")
    alice = write_records(store, keystore, make_span, _about_to_expire(), count=2)
    bob = write_records(store, keystore, make_span, _about_to_expire(), **{"enduser.id": "bob"})
    # the hold is placed after insert, for one user, by plaintext id (pseudonymized for SQL)
    hold = add_hold(store, keystore, tenant_id="acme", user_id="alice", reason="case 42",
                    actor="legal")
    assert hold.rows_held == 2 and hold.user_key and hold.user_key != "alice"
    assert "alice" not in str(store.rows("SELECT * FROM legal_holds"))
    _wait_for_expiry(store)
    enforce_retention(store)
    assert _ids(store) == set()  # the TTL did its job on interactions...
    assert _ids(store, "held_interactions") == set(alice)  # ...and the held copies survive
    assert set(bob).isdisjoint(_ids(store, "held_interactions"))
    assert held_ids(store, "acme") == set(alice) and held_ids(store, "globex") == set()
    summary = retention_summary(store, "acme")
    assert summary.held_records == 2 and [h.hold_id for h in summary.active_holds] == [
        hold.hold_id]
    released = release_hold(store, hold.hold_id, actor="legal", reason="case closed")
    assert not released.active and released.released_by == "legal"
    assert _ids(store, "held_interactions") == set()  # released: the records are gone
    assert list_holds(store) == [] and len(list_holds(store, include_released=True)) == 1
    with pytest.raises(HoldError, match="already released"):
        release_hold(store, hold.hold_id, actor="legal", reason="again")


def test_open_hold_catches_later_records_and_holds_do_not_interfere(store, keystore, make_span):
    now = datetime.now(UTC)
    first = add_hold(store, keystore, tenant_id="acme", reason="investigation", actor="legal",
                     from_ts=now - timedelta(days=10))
    narrow = add_hold(store, keystore, tenant_id="acme", reason="other case", actor="legal",
                      from_ts=now - timedelta(days=10), to_ts=now - timedelta(days=5))
    assert first.rows_held == 0
    late = write_records(store, keystore, make_span, now)
    old = write_records(store, keystore, make_span, now - timedelta(days=7))
    outside = write_records(store, keystore, make_span, now - timedelta(days=20))
    assert sweep_holds(store) == 3  # 2 for the open hold, 1 for the narrow one
    assert sweep_holds(store) == 0  # idempotent
    counts = {h.hold_id: h.rows_held for h in list_holds(store)}
    assert counts == {first.hold_id: 2, narrow.hold_id: 1}
    release_hold(store, narrow.hold_id, actor="legal", reason="settled")
    assert _ids(store, "held_interactions") == set(late + old)  # the other hold is intact
    assert set(outside).isdisjoint(_ids(store, "held_interactions"))


def test_hold_input_errors(store, keystore):
    with pytest.raises(HoldError, match="reason"):
        add_hold(store, keystore, tenant_id="acme", reason="", actor="legal")
    now = datetime.now(UTC)
    with pytest.raises(HoldError, match="before"):
        add_hold(store, keystore, tenant_id="acme", reason="r", actor="a", from_ts=now,
                 to_ts=now - timedelta(days=1))
    with pytest.raises(HoldError, match="not a hold id"):
        release_hold(store, "nope", actor="a", reason="r")


def test_retention_summary(store, keystore, make_span):
    set_policy(store, "acme", RetentionPolicy(60, 40), changed_by="dpo", reason="r")
    now = datetime.now(UTC)
    write_records(store, keystore, make_span, now - timedelta(days=15))  # content in 25d
    write_records(store, keystore, make_span, now - timedelta(days=35))  # row 25d, content 5d
    write_records(store, keystore, make_span, now)  # row 60d, content 40d
    write_records(store, keystore, make_span, now - timedelta(days=50),
                  **{"tenant.id": "globex"})  # another tenant: not in acme's summary
    set_policy(store, "acme", RetentionPolicy(20), changed_by="dpo", reason="shorter")
    summary = retention_summary(store, "acme")
    assert summary.records == 3
    assert summary.oldest_record is not None
    assert abs(summary.oldest_record.replace(tzinfo=UTC) - (now - timedelta(days=35))
               ) < timedelta(seconds=1)
    assert summary.due_in_30_days == 1
    assert summary.content_due_in_30_days == 2
    assert summary.kept_longer_than_policy == 3  # stamped 60d, policy now 20d
    assert summary.policies == {"acme": RetentionPolicy(20)}
    assert summary.last_archive is None and summary.active_holds == []
    assert retention_summary(store).records == 4


def test_maintenance_pass_sweeps_holds_and_enforces(store, keystore, make_span):
    from genai_audit.clickhouse.maintain import run_maintenance
    from genai_audit.config import Settings

    add_hold(store, keystore, tenant_id="acme", reason="open matter", actor="legal")
    set_policy(store, "shortlived", RetentionPolicy(1), changed_by="ops", reason="test")
    write_records(store, keystore, make_span, datetime.now(UTC))  # arrives after the hold
    # one part: a row that expires in seconds next to one that lives a minute longer
    soon, later_at = _about_to_expire(), datetime.now(UTC) - timedelta(days=1, seconds=-60)
    doomed, later = write_records(store, keystore, make_span, [soon, later_at],
                                  **{"tenant.id": "shortlived"})
    _no_background_ttl_merges(store)
    _wait_for_expiry(store)
    report = run_maintenance(store, keystore, Settings.load({}, env={}))
    assert report.ok and report.errors == [] and report.archive is None
    assert report.held_rows_copied == 1
    assert report.retention is not None and report.retention.rows_expired == 1
    assert doomed not in _ids(store) and later in _ids(store)
