"""The ClickHouse exporter against the real embedded engine."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext

from genai_audit.clickhouse.errors import StoreUnavailable
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.exporter.spool import Spool
from genai_audit.processor.factory import default_pipeline

pytestmark = pytest.mark.integration


class FlakyStore(Store):
    """A real store whose insert lands but then reports a lost connection (the classic
    'did my write happen?' case), ``failures`` times; or fails before inserting."""

    def __init__(self, inner: Store, failures: int, land_first: bool = True) -> None:
        super().__init__(inner.client, inner.dsn, inner.database)
        self.failures, self.land_first, self.inserts = failures, land_first, 0

    def insert(self, table, rows, column_names, settings=None):  # type: ignore[override]
        self.inserts += 1
        if self.failures > 0:
            self.failures -= 1
            if self.land_first:
                super().insert(table, rows, column_names, settings)
            raise StoreUnavailable("connection reset by peer")
        super().insert(table, rows, column_names, settings)


def _exporter(store: Store, keystore, spool: Spool | None = None, **settings
              ) -> ClickHouseSpanExporter:
    # the checkpoint timer must not fire after the test's database is dropped
    s = Settings.load({"ledger_checkpoint_seconds": 3600, **settings}, env={})
    return ClickHouseSpanExporter(s, store=store, pipeline=default_pipeline(s, keystore),
                                  sleep=lambda _s: None, spool=spool)


def test_spans_become_rows(store, keystore, make_span):
    exporter = _exporter(store, keystore)
    spans = [make_span(), make_span(**{"tenant.id": "globex", "genai_audit.tool": "contract_review"})]
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    rows = store.rows("SELECT tenant_id, tool_name, prompt_tokens, response_tokens, total_cost, "
                      "status_code, length(prompt_hash), record_version FROM interactions "
                      "ORDER BY tenant_id")
    assert [r[:4] for r in rows] == [("acme", "hr_helpdesk", 10, 20),
                                     ("globex", "contract_review", 10, 20)]
    assert all(r[4] > 0 and r[5] == 200 and r[6] == 32 and r[7] == 1 for r in rows)


def test_a_retried_batch_does_not_duplicate(store, keystore, make_span):
    flaky = FlakyStore(store, failures=1, land_first=True)
    exporter = _exporter(flaky, keystore)
    spans = [make_span() for _ in range(5)]
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert flaky.inserts == 2 and exporter.stats["retries"] == 1
    assert store.scalar("SELECT count() FROM interactions") == 5
    # a later replay of the same spans (collector retry, spool replay) is dropped too
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert store.scalar("SELECT count() FROM interactions") == 5


def test_retries_are_bounded_then_the_batch_is_spooled(store, keystore, make_span, tmp_path):
    flaky = FlakyStore(store, failures=10, land_first=False)
    spool = Spool(tmp_path / "spool", 10**6)
    exporter = _exporter(flaky, keystore, spool=spool, max_retries=2)
    assert exporter.export([make_span()]) is SpanExportResult.SUCCESS  # durable on disk
    assert flaky.inserts == 3 and exporter.stats["spooled"] == 1
    assert spool.stats().records == 1
    assert store.scalar("SELECT count() FROM interactions") == 0


def test_failure_is_reported_not_raised_when_the_spool_is_full(store, keystore, make_span,
                                                               tmp_path):
    flaky = FlakyStore(store, failures=10, land_first=False)
    exporter = _exporter(flaky, keystore, spool=Spool(tmp_path / "spool", 1), max_retries=2)
    assert exporter.export([make_span()]) is SpanExportResult.FAILURE
    assert flaky.inserts == 3 and exporter.stats["failed_batches"] == 1
    assert store.scalar("SELECT count() FROM interactions") == 0


def test_unreachable_store_fails_cleanly(make_span, tmp_path):
    exporter = ClickHouseSpanExporter(
        Settings.load({"dsn": "http://127.0.0.1:9/", "max_retries": 1,
                       "keystore_dir": str(tmp_path / "keys"),
                       "export_timeout_ms": 2000}, env={}), sleep=lambda _s: None,
        spool=Spool(tmp_path / "spool", 1))  # full: nowhere to put the batch
    assert exporter.export([make_span()]) is SpanExportResult.FAILURE
    assert exporter.warm_up() is False
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export([make_span()]) is SpanExportResult.FAILURE


def test_bad_spans_still_land_with_flags(store, keystore, make_span):
    exporter = _exporter(store, keystore)
    spans = [make_span(**{"gen_ai.input.messages": "{broken", "tenant.id": None}),
             make_span(**{"gen_ai.usage.output_tokens": None,
                          "enduser.id": "b\udcffob"}),
             make_span(**{"gen_ai.request.model": "mystery-model",
                          "gen_ai.response.model": None})]
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    rows = dict(store.rows("SELECT arrayStringConcat(flags, ','), tenant_id FROM interactions"))
    assert rows == {"malformed_input_messages,unattributed": "_unattributed",
                    "invalid_utf8,missing_usage": "acme", "unknown_model": "acme"}


def _copy(span: ReadableSpan, span_id: int, **fields: object) -> ReadableSpan:
    """A span as a hostile OTLP client could send it: real SDK class, chosen values."""
    context = SpanContext(span.context.trace_id, span_id, is_remote=False)
    values = {"name": span.name, "context": context, "attributes": span.attributes,
              "resource": span.resource, "start_time": span.start_time,
              "end_time": span.end_time, **fields}
    return ReadableSpan(**values)  # type: ignore[arg-type]


def test_hostile_numbers_and_an_unreadable_span_do_not_sink_the_batch(
        store, keystore, make_span, caplog):
    exporter = _exporter(store, keystore)
    good = make_span()
    # each its own call (its own response id): copies of one span would be merged as one
    absurd = make_span(**{"gen_ai.response.id": "chatcmpl-a1",
                          "gen_ai.usage.input_tokens": float("inf"),
                          "gen_ai.usage.output_tokens": float("nan"),
                          "http.response.status_code": 3_000_000_000})
    spans = [good,
             _copy(absurd, 0xA1, end_time=absurd.start_time + 2**62),  # centuries long
             _copy(good, 0xB2, start_time="yesterday"),  # unreadable: skipped, logged
             _copy(make_span(**{"gen_ai.response.id": "chatcmpl-c3"}), 0xC3,
                   start_time=None)]  # not stored as 1970 (TTL would drop it)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    rows = store.rows("SELECT span_id, prompt_tokens, response_tokens, status_code, latency_ms, "
                      "arrayStringConcat(flags, ',') FROM interactions ORDER BY span_id")
    assert [r[0] for r in rows] == sorted([f"{good.context.span_id:016x}",
                                           f"{0xA1:016x}", f"{0xC3:016x}"])
    bad = next(r for r in rows if r[0] == f"{0xA1:016x}")
    assert bad[1:] == (0, 0, 200, 2**32 - 1, "missing_usage")
    assert f"{0xB2:016x} could not be read (TypeError)" in caplog.text
    undated = next(r for r in rows if r[0] == f"{0xC3:016x}")
    assert undated[3:] == (200, 0, "missing_start_time")
    stamped = store.scalar("SELECT toUnixTimestamp64Micro(event_timestamp) FROM interactions "
                           "WHERE span_id = {s:String}", {"s": f"{0xC3:016x}"})
    assert stamped == spans[3].end_time // 1000  # the end time stands in for the start


def test_export_runs_with_instrumentation_suppressed(store, keystore, make_span):
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value

    seen = []

    class Spy(Store):
        def insert(self, *args, **kwargs):  # type: ignore[override]
            seen.append(get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            return super().insert(*args, **kwargs)

    exporter = _exporter(Spy(store.client, store.dsn, store.database), keystore)
    exporter.export([make_span()])
    assert seen == [True]
