"""The store owner's lifecycle (issue 15): one composition root, write-time legal holds,
maintenance on the injected clock, background failures as control failures.

Time is a ``ManualClock`` moved by the test; nothing here waits on the wall clock.
ClickHouse's own TTL runs on real time: a record whose retention already passed when it is
written is dropped at insert, which is exactly the case the write-time hold copy must cover.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from genai_audit.clickhouse.control_events import CHECKPOINT, MAINTENANCE
from genai_audit.clickhouse.holds import add_hold, list_holds, release_hold
from genai_audit.clickhouse.policies import StorePolicies, set_policy
from genai_audit.clickhouse.reports.build import build_report
from genai_audit.clock import ManualClock
from genai_audit.config import Settings
from genai_audit.exporter.gateway.auth import Authenticator
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.runtime import build_core
from genai_audit.exporter.gateway.sink import LocalSink, OwnerServer, RemoteSink
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.processor.compose import HOLD_REFRESH_S
from genai_audit.processor.retention import RetentionPolicy, RetentionStage

pytestmark = pytest.mark.integration


def _settings(tmp_path, **overrides):
    return Settings.load({"keystore_dir": str(tmp_path / "keys"), **overrides}, env={})


def _ids(store, table):
    return {str(r[0]) for r in store.rows(f"SELECT DISTINCT id FROM {table}")}


def _write(exporter, make_span, at, **attrs):
    """Build through the exporter's pipeline, backdate, write through its owner's writer."""
    [record] = exporter.build([make_span(**attrs)])
    record.event_timestamp = at
    assert exporter.write_records([record]) == "stored"
    return record.id


def test_every_owner_composes_the_same_stages_and_the_stores_policies(store, tmp_path,
                                                                     make_span):
    """In-process exporter, gateway (one process) and gateway worker: same stages in the same
    order, and each retention stage reads the store's policy table."""
    settings = _settings(tmp_path)
    exporter = ClickHouseSpanExporter(settings, store=store)
    sink = LocalSink(exporter, Metrics())
    address = str(tmp_path / "owner.sock")
    owner = OwnerServer(sink, address, b"k" * 32)
    owner.start()
    try:
        auth = Authenticator({}, True)
        pipelines = {
            "in-process": exporter.pipeline,
            "gateway": build_core(settings, auth, sink, Metrics()).pipeline,
            "gateway worker": build_core(settings, auth, RemoteSink(address, b"k" * 32),
                                         Metrics()).pipeline,
        }
        set_policy(store, "globex", RetentionPolicy(7, 3), changed_by="dpo", reason="test")
        stages = {path: [type(s).__name__ for s in p.stages] for path, p in pipelines.items()}
        assert len({tuple(v) for v in stages.values()}) == 1, stages
        for path, pipeline in pipelines.items():
            [retention] = [s for s in pipeline.stages if isinstance(s, RetentionStage)]
            assert isinstance(retention.policies, StorePolicies), path
            assert retention.policies.policy_for("globex") == RetentionPolicy(7, 3), path
            assert retention.policies.policy_for("acme") == RetentionPolicy(365), path
        # and the records they build carry it
        [record] = pipelines["gateway worker"].build([make_span(**{"tenant.id": "globex"})])
        assert (record.retention_days, record.content_retention_days) == (7, 3)
    finally:
        owner.close()
        sink.close()
        exporter.shutdown()


def test_a_record_under_an_active_hold_is_protected_at_write_time(store, tmp_path, make_span):
    """Regression: a record arriving after a hold was placed was copied only by a later
    sweep, which never ran while the store was owned: it expired under the hold. Now the
    owner's writer copies it with its insert, even one the TTL drops at insert."""
    clock = ManualClock(datetime.now(UTC))
    exporter = ClickHouseSpanExporter(_settings(tmp_path), store=store, clock=clock)
    keys = exporter.composition.keys
    set_policy(store, "acme", RetentionPolicy(1), changed_by="dpo", reason="short")
    hold = add_hold(store, keys, tenant_id="acme", reason="litigation", actor="legal")
    try:
        now = clock.now()
        fresh = _write(exporter, make_span, now)
        expired = _write(exporter, make_span, now - timedelta(days=2))  # TTL drops it at once
        other = _write(exporter, make_span, now, **{"tenant.id": "globex"})
        assert expired not in _ids(store, "interactions")  # what the TTL did
        assert _ids(store, "held_interactions") == {fresh, expired}  # what the hold kept
        assert other not in _ids(store, "held_interactions")
        [listed] = list_holds(store)
        assert listed.rows_held == 2

        # release: the copies go, and later records are no longer copied once the writer's
        # view of the holds refreshes on the clock
        release_hold(store, hold.hold_id, actor="legal", reason="settled")
        assert _ids(store, "held_interactions") == set()
        clock.advance(HOLD_REFRESH_S)
        _write(exporter, make_span, clock.now())
        assert _ids(store, "held_interactions") == set()
    finally:
        exporter.shutdown()


def test_maintenance_runs_on_the_clock_and_its_failures_are_control_failures(
        store, tmp_path, make_span):
    clock = ManualClock(datetime.now(UTC))
    # an archive location that cannot work: every pass records a failed archive step
    settings = _settings(tmp_path, maintenance_interval_seconds=600,
                         archive_url="ftp://archive.invalid/audit")
    exporter = ClickHouseSpanExporter(settings, store=store, clock=clock)
    try:
        _write(exporter, make_span, clock.now())
        scheduler = exporter.composition.owner.maintenance
        assert scheduler is not None
        assert scheduler.run_due() is None  # not due yet
        clock.advance(600)
        report = scheduler.run_due()
        assert report is not None and not report.ok
        assert [e.split(":")[0] for e in report.errors] == ["archive"]
        assert exporter.counts()["maintenance_runs"] == 1
        assert exporter.counts()["maintenance_failures"] == 1
        events = store.rows("SELECT kind, ok, at FROM control_events")
        assert [(k, ok) for k, ok, _ in events] == [(MAINTENANCE, False)]
        assert events[0][2].replace(tzinfo=UTC) == clock.now()  # stamped by the app clock

        section = build_report(store, tenant=None, start=clock.now() - timedelta(days=1),
                               end=clock.now() + timedelta(days=1)).section("control_failures")
        rows = {r[0]: r for r in section.tables[0].rows}
        assert rows[MAINTENANCE][3] == 1 and "archive" in rows[MAINTENANCE][6]
        assert section.status.value != "ok"
    finally:
        exporter.shutdown()


def test_a_checkpoint_that_cannot_be_stored_is_a_control_failure(store, tmp_path, make_span):
    clock = ManualClock(datetime.now(UTC))
    exporter = ClickHouseSpanExporter(_settings(tmp_path), store=store, clock=clock)
    try:
        _write(exporter, make_span, clock.now())
        store.command("RENAME TABLE ledger_checkpoints TO ledger_checkpoints_away")
        assert exporter.composition.owner.writer.ledger.flush() == 0
        store.command("RENAME TABLE ledger_checkpoints_away TO ledger_checkpoints")
        assert store.rows("SELECT kind, ok, detail FROM control_events") == [
            (CHECKPOINT, False, "1 log(s) not checkpointed: store_error")]
        assert exporter.counts()["checkpoint_failures"] == 1
        assert exporter.composition.owner.writer.ledger.flush() == 1  # signed once it can
    finally:
        exporter.shutdown()


def test_maintenance_interval_must_be_shorter_than_the_shortest_retention():
    from genai_audit.config import SettingsError
    with pytest.raises(SettingsError, match="shorter than the shortest retention"):
        Settings.load({"maintenance_interval_seconds": 86_400}, env={})
    assert Settings.load({"maintenance_interval_seconds": 0}, env={}) \
        .maintenance_interval_seconds == 0
    assert Settings.load(env={"GENAI_AUDIT_MAINTENANCE_INTERVAL_SECONDS": "900"}) \
        .maintenance_interval_seconds == 900
    assert os.environ.get("GENAI_AUDIT_MAINTENANCE_INTERVAL_SECONDS") is None
