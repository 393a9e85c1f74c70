"""A year in the life (issue 15's acceptance): 13 simulated months through both entry paths.

Three tenants with 30, 365 and 2190-day policies receive records every simulated day, half
through the in-process exporter and half through the gateway's core (decode, the gateway's
composed pipeline, the owner's sink); a legal hold on the 30-day tenant is placed in month 3
and released in month 9; a data subject is erased in month 5; the master key is rotated in
month 6; at each month's end the owner's maintenance pass runs on the ``ManualClock``,
archiving whole months to S3 (moto on 127.0.0.1).

Time: the application's clock (``ManualClock``) walks from 391 days ago to about a day ago; event
timestamps are that clock's time. ClickHouse's TTL runs on real time, so:

* a record whose ``event_timestamp + retention`` is already past in real time is dropped at
  insert: every 30-day record but the last month's, and the 365-day records of the first
  month. Held ones survive as copies in ``held_interactions`` (the write-time hold copy);
* the start is offset by 6 hours, so no record's expiry lies within 6 hours of real now and
  the expected counts do not depend on when the test runs.

The second test runs verify after every month (expiry judged from the checkpoints' signed
metadata against the real clock, which is the one ClickHouse's TTL used) and then deletes an
unexpired row, which must be named. The other tamper cases (a held row deleted, expiry
claimed for a row whose signed expiry lies ahead) are in tests/integration/
test_ledger_anchoring.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from audit_records import KEY_ID, SECRET
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.clickhouse.erasure import ErasureStatus, erase_subject
from genai_audit.clickhouse.holds import add_hold, list_holds, release_hold
from genai_audit.clickhouse.ledger.verify import Verifier
from genai_audit.clickhouse.maintain import run_maintenance
from genai_audit.clickhouse.policies import set_policy
from genai_audit.clickhouse.retention import retention_summary
from genai_audit.clock import ManualClock
from genai_audit.config import Settings
from genai_audit.exporter.gateway.auth import Authenticator
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.runtime import build_core
from genai_audit.exporter.gateway.sink import LocalSink
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.keystore import open_keystore
from genai_audit.processor.retention import RetentionPolicy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANTS = {"t30": 30, "t365": 365, "t2190": 2190}
DAYS = 13 * 30  # 13 simulated months of 30 days, ending about a day before real now
MONTH = 30
HOLD_FROM, HOLD_TO, ERASE_AT, ROTATE_AT = 3, 9, 5, 6  # months


class Spans:
    """Real SDK spans with a chosen start time (the gateway gets them as OTLP)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "year"}))
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("year")

    def make(self, at: datetime, tenant: str, user: str) -> ReadableSpan:
        start = int(at.timestamp() * 1e9)
        span = self.tracer.start_span("openai.chat", start_time=start, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text",'
                                     '"content":"status of my order"}]}]',
            "tenant.id": tenant, "enduser.id": user})
        span.end(end_time=start + 400_000_000)
        return self.exporter.get_finished_spans()[-1]


class Year:
    """The simulation: drive it month by month; it records what should be where."""

    def __init__(self, store, tmp_path, s3_endpoint: str, bucket: str) -> None:
        real_now = datetime.now(UTC).replace(microsecond=0)
        self.real_now = real_now
        self.clock = ManualClock(real_now - timedelta(days=DAYS + 1, hours=-6))
        self.settings = Settings.load({
            "keystore_dir": str(tmp_path / "keys"), "maintenance_interval_seconds": 43_200,
            "archive_url": f"s3://{bucket}/year", "s3_endpoint_url": s3_endpoint,
            "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET}, env={})
        self.store = store
        self.keys = open_keystore(self.settings)
        for tenant, days in TENANTS.items():
            set_policy(store, tenant, RetentionPolicy(days), changed_by="dpo", reason="year")
        self.exporter = ClickHouseSpanExporter(self.settings, store=store, keys=self.keys,
                                               clock=self.clock)
        self.sink = LocalSink(self.exporter, Metrics())
        self.core = build_core(self.settings, Authenticator({}, True), self.sink, Metrics())
        self.principal = self.core.authenticate(None)
        # The archive leaves records ingested in the last minute of *engine* time for the next
        # pass (ingested_at is the engine's clock); the simulation writes and archives within
        # seconds, so its passes archive everything already written.
        scheduler = self.exporter.composition.owner.maintenance
        scheduler.job = lambda: run_maintenance(store, self.keys, self.settings,
                                                clock=self.clock, settle_seconds=0)
        self.spans = Spans()
        self.written: list[tuple[str, datetime, str]] = []  # (tenant, at, user)
        self.hold_id = ""
        self.hold_placed_after = 0  # records written before the hold was placed
        self.day = 0

    def close(self) -> None:
        self.sink.close()
        self.exporter.shutdown()

    def run_month(self, month: int) -> None:
        """Thirty days of traffic (weekly batches per path), then the month's events."""
        if month == HOLD_FROM:
            hold = add_hold(self.store, self.keys, tenant_id="t30", reason="litigation",
                            actor="counsel", from_ts=self.clock.now())
            self.hold_id, self.hold_placed_after = hold.hold_id, len(self.written)
            self.exporter.composition.owner.holds.invalidate()
        if month == HOLD_TO:
            release_hold(self.store, self.hold_id, actor="counsel", reason="settled")
            self.exporter.composition.owner.holds.invalidate()
        week: list[ReadableSpan] = []
        for _ in range(MONTH):
            if self.day >= DAYS:
                break
            self.clock.advance(timedelta(days=1))
            self.day += 1
            for tenant in TENANTS:
                user = "erase-me" if tenant == "t365" and self.day % 10 == 0 else "alice"
                week.append(self.spans.make(self.clock.now(), tenant, user))
                self.written.append((tenant, self.clock.now(), user))
            if self.day % 7 == 0:
                self._send(week)
                week = []
        self._send(week)
        if month == ERASE_AT:
            result = erase_subject(self.store, self.keys, tenant_id="t365",
                                   user_id="erase-me", reason="subject-request",
                                   operator="dpo")
            assert result.status is ErasureStatus.ERASED and result.records_affected > 0
        if month == ROTATE_AT:
            self.keys.rotate_master_key()
        report = self.exporter.composition.owner.maintenance.run_now()
        assert report is not None and report.ok, report and report.errors

    def _send(self, spans: list[ReadableSpan]) -> None:
        half = len(spans) // 2
        if spans[:half]:
            assert self.exporter.export(spans[:half]).name == "SUCCESS"
        if spans[half:]:
            body = encode_spans(spans[half:]).SerializeToString()
            outcome = self.core.export(self.principal, body, as_json=False)
            assert outcome.durability == "stored"

    # -- what should be where ---------------------------------------------------------
    def expected_live(self, tenant: str) -> int:
        """Records the TTL has not dropped: expiry after real now (never within 6 hours)."""
        days = TENANTS[tenant]
        return sum(1 for t, at, _ in self.written
                   if t == tenant and at + timedelta(days=days) > self.real_now)

    def expected_held(self) -> int:
        """Records of t30 the active hold covers: all written after it was placed, and those
        before it (at or after ``from_ts``) that the TTL had not dropped when it was placed."""
        if not self.hold_id:
            return 0
        hold = next(h for h in list_holds(self.store, include_released=True)
                    if h.hold_id == self.hold_id)
        if not hold.active:
            return 0
        assert hold.from_ts is not None
        return sum(1 for i, (t, at, _) in enumerate(self.written)
                   if t == "t30" and at >= hold.from_ts and (
                       i >= self.hold_placed_after
                       or at + timedelta(days=TENANTS[t]) > self.real_now))


def test_a_year_of_retention_holds_erasure_rotation_and_archive(store, tmp_path, s3_endpoint,
                                                              s3_bucket):
    client, bucket = s3_bucket
    year = Year(store, tmp_path, s3_endpoint, bucket)
    try:
        for month in range(1, 14):
            year.run_month(month)
            for tenant in TENANTS:
                summary = retention_summary(store, tenant)
                assert summary.records == year.expected_live(tenant), (month, tenant)
            held = retention_summary(store, "t30").held_records
            assert held == year.expected_held(), month
            if HOLD_FROM <= month < HOLD_TO:
                assert held > 0  # records the TTL dropped at insert are still there
        assert year.day == DAYS
        objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert any(o["Key"].endswith(".parquet") for o in objects)
        assert store.scalar("SELECT countIf(ok) FROM control_events "
                            "WHERE kind = 'maintenance'") == 13
        assert store.scalar("SELECT count() FROM control_events WHERE NOT ok") == 0
    finally:
        year.close()


def test_a_year_verify_stays_intact_and_still_names_tampering(store, tmp_path, s3_endpoint,
                                                              s3_bucket):
    _, bucket = s3_bucket
    year = Year(store, tmp_path, s3_endpoint, bucket)
    verifier = Verifier(store, year.keys.signing_key().public_key())
    try:
        for month in range(1, 14):
            year.run_month(month)
            year.exporter.force_flush()
            result = verifier.run()
            assert result.ok, (month, [(f.kind, f.position) for f in result.findings])
        # then: delete one unexpired row -> named
        [(victim,)] = store.rows("SELECT toString(id) FROM interactions WHERE tenant_id = "
                                 "'t2190' ORDER BY event_timestamp DESC LIMIT 1")
        store.command("ALTER TABLE interactions DELETE WHERE id = {id:UUID}", {"id": victim},
                      settings={"mutations_sync": 2})
        result = verifier.run()
        assert not result.ok and victim in {f.record_id for f in result.findings}
    finally:
        year.close()
