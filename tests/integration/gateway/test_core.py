"""GatewayCore on the real pipeline and the session's embedded store (no sockets)."""

from __future__ import annotations

import socket

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from genai_audit.config import Settings
from genai_audit.exporter.gateway.auth import Authenticator, Principal
from genai_audit.exporter.gateway.core import GatewayCore
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.sink import LocalSink, Unavailable
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.exporter.spool import Spool
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline

pytestmark = pytest.mark.integration

ACME = Principal(tenant="acme", name="acme")


class _Marker:
    """A stand-in redaction stage: records which records it saw (name as issue 3's)."""

    name = "redact"
    failure_flag = None

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process(self, records) -> None:
        self.seen += [r.span_id for r in records]


def _core(store, keystore, tmp_path, *, mismatch="reject", spool_bytes=10**7):
    settings = Settings.load({"max_retries": 0, "ledger_checkpoint_seconds": 3600}, env={})
    exporter = ClickHouseSpanExporter(settings, store=store, skip_stored=True,
                                      spool=Spool(tmp_path / "spool", spool_bytes))
    metrics = Metrics()
    redact = _Marker()
    base = default_pipeline(settings, keystore)
    pipeline = RecordPipeline([base.stages[0], redact, *base.stages[1:]])
    core = GatewayCore(auth=Authenticator({}, True), pipeline=pipeline,
                       sink=LocalSink(exporter, metrics), metrics=metrics,
                       tenant_mismatch=mismatch, max_attribute_chars=4096)
    return core, redact


def _rows(store):
    return store.rows("SELECT span_id, tenant_id, flags, gdpr_pseudonymized_user_key "
                      "FROM interactions ORDER BY span_id")


def test_mixed_request_stores_the_good_spans_and_reports_the_rest(store, keystore, tmp_path,
                                                                 make_span):
    core, _ = _core(store, keystore, tmp_path)
    good, other_tenant, bad_id, not_genai = (make_span(), make_span(tenant__id="globex"),
                                             make_span(), make_span(gen_ai__operation__name=None,
                                                                    gen_ai__provider__name=None,
                                                                    gen_ai__request__model=None))
    request = encode_spans([good, other_tenant, bad_id, not_genai])
    request.resource_spans[0].scope_spans[0].spans[2].trace_id = b"\x01" * 3
    outcome = core.export(ACME, request.SerializeToString(), as_json=False)
    assert outcome.rejected == {"tenant_mismatch": 1, "invalid_trace_id": 1}
    assert outcome.accepted == 2 and outcome.durability == "stored"
    assert "2 span(s) rejected" in outcome.message()
    rows = _rows(store)
    assert [r[0] for r in rows] == [f"{good.context.span_id:016x}"]
    assert rows[0][1] == "acme" and rows[0][3] and rows[0][3] != "alice"
    assert core.metrics.rejected("tenant_mismatch") == 1
    assert core.metrics.value("ignored_spans") == 1


def test_reattribute_mode_keeps_and_flags(store, keystore, tmp_path, make_span):
    core, _ = _core(store, keystore, tmp_path, mismatch="reattribute")
    span = make_span(tenant__id="globex")
    core.export(ACME, encode_spans([span]).SerializeToString(), as_json=False)
    [(_, tenant, flags, _)] = _rows(store)
    assert tenant == "acme" and "tenant_reattributed" in flags


def test_unattributed_span_from_a_token_belongs_to_the_token_tenant(store, keystore, tmp_path,
                                                                    make_span):
    core, _ = _core(store, keystore, tmp_path)
    core.export(ACME, encode_spans([make_span(tenant__id=None)]).SerializeToString(),
                as_json=False)
    [(_, tenant, flags, _)] = _rows(store)
    assert tenant == "acme" and "unattributed" not in flags


def test_processed_marker_skips_redaction_only_for_trusted_senders(store, keystore, tmp_path,
                                                                   make_span):
    core, redact = _core(store, keystore, tmp_path)
    marked = make_span(genai_audit__processed="redact")
    body = encode_spans([marked]).SerializeToString()
    core.export(ACME, body, as_json=False)  # untrusted: the marker is ignored
    assert redact.seen == [f"{marked.context.span_id:016x}"]
    trusted = Principal(tenant="acme", trust_processed=True)
    other = make_span(genai_audit__processed="redact")
    core.export(trusted, encode_spans([other]).SerializeToString(), as_json=False)
    assert f"{other.context.span_id:016x}" not in redact.seen
    assert len(_rows(store)) == 2  # the other stages still ran: pseudonym key present


def test_replayed_and_rebatched_spans_are_stored_once(store, keystore, tmp_path, make_span):
    core, _ = _core(store, keystore, tmp_path)
    a, b, c = make_span(), make_span(), make_span()
    core.export(ACME, encode_spans([a, b]).SerializeToString(), as_json=False)
    core.export(ACME, encode_spans([b, c]).SerializeToString(), as_json=False)  # new batch
    core.export(ACME, encode_spans([a, b]).SerializeToString(), as_json=False)  # replay
    d = make_span()
    core.export(ACME, encode_spans([d, d]).SerializeToString(), as_json=False)  # twice in one
    assert len(_rows(store)) == 4
    assert core.metrics.value("duplicate_records") == 4


def test_a_span_reusing_another_tenants_ids_is_stored_not_dropped(store, keystore, tmp_path,
                                                                   make_span):
    """Dedup is per tenant: globex sending acme's trace/span ids is not acme's replay."""
    core, _ = _core(store, keystore, tmp_path)
    span = make_span(tenant__id=None)
    body = encode_spans([span]).SerializeToString()
    globex = Principal(tenant="globex", name="globex")
    core.export(ACME, body, as_json=False)
    core.export(globex, body, as_json=False)  # another tenant, same ids, after acme's
    core.export(globex, body, as_json=False)  # globex's own replay: dropped
    assert sorted(r[1] for r in _rows(store)) == ["acme", "globex"]
    assert core.metrics.value("duplicate_records") == 1
    # and across a restart (the store is asked, not this process's memory)
    again, _ = _core(store, keystore, tmp_path)
    mixed = encode_spans([span, other := make_span(tenant__id=None)]).SerializeToString()
    again.export(globex, mixed, as_json=False)
    again.export(Principal(tenant="initech", name="initech"), mixed, as_json=False)
    tenants = sorted(r[1] for r in _rows(store))
    assert tenants == ["acme", "globex", "globex", "initech", "initech"], tenants
    assert other is not None


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_store_down_spools_then_drains_when_back(store, keystore, tmp_path, make_span):
    """The real failure: clickhouse-connect against a closed loopback port (no server)."""
    down = Settings.load({"dsn": f"http://default:x@127.0.0.1:{_closed_port()}",
                          "max_retries": 1}, env={})
    spool = Spool(tmp_path / "spool", 10**7)
    outage = ClickHouseSpanExporter(down, spool=spool, pipeline=default_pipeline(down, keystore))
    spans = [make_span() for _ in range(5)]
    from opentelemetry.sdk.trace.export import SpanExportResult
    assert outage.export(spans[:3]) is SpanExportResult.SUCCESS  # acknowledged: spooled
    assert outage.export(spans[3:]) is SpanExportResult.SUCCESS
    assert outage.stats["spooled"] == 5 and spool.stats().records == 5
    # The store is back (a process restarted against it): the spool drains first, once.
    back = ClickHouseSpanExporter(Settings.load({"ledger_checkpoint_seconds": 3600}, env={}),
                                  store=store, spool=spool,
                                  pipeline=default_pipeline(down, keystore))
    assert back.export([spans[0], make_span()]) is SpanExportResult.SUCCESS
    assert spool.stats().batches == 0
    assert store.scalar("SELECT count() FROM interactions") == 6
    assert store.scalar("SELECT uniqExact(id) FROM interactions") == 6


def test_spool_full_is_a_retryable_unavailable(keystore, tmp_path, make_span):
    down = Settings.load({"dsn": f"http://default:x@127.0.0.1:{_closed_port()}",
                          "max_retries": 0}, env={})
    exporter = ClickHouseSpanExporter(down, spool=Spool(tmp_path / "s", 2500), skip_stored=True)
    metrics = Metrics()
    core = GatewayCore(auth=Authenticator({}, True), pipeline=default_pipeline(down, keystore),
                       sink=LocalSink(exporter, metrics), metrics=metrics,
                       tenant_mismatch="reject", max_attribute_chars=4096)
    with pytest.raises(Unavailable) as caught:
        for _ in range(20):
            core.export(ACME, encode_spans([make_span()]).SerializeToString(), as_json=False)
    assert caught.value.retry_after > 0
    assert metrics.rejected("unavailable") == 1 and metrics.value("spooled_records") >= 1
    assert not core.ready()


def test_a_disk_refusing_the_spool_write_answers_unavailable_and_not_ready(keystore, tmp_path,
                                                                           make_span):
    """Store down, spool disk full (ENOSPC from the spool's write seam): 503, not ready."""
    import errno

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    down = Settings.load({"dsn": f"http://default:x@127.0.0.1:{_closed_port()}",
                          "max_retries": 0}, env={})
    spool = Spool(tmp_path / "s", 10**9, write=full_disk)
    exporter = ClickHouseSpanExporter(down, spool=spool, skip_stored=True)
    metrics = Metrics()
    core = GatewayCore(auth=Authenticator({}, True), pipeline=default_pipeline(down, keystore),
                       sink=LocalSink(exporter, metrics), metrics=metrics,
                       tenant_mismatch="reject", max_attribute_chars=4096)
    assert core.ready()
    with pytest.raises(Unavailable, match="spool disk refused"):
        core.export(ACME, encode_spans([make_span()]).SerializeToString(), as_json=False)
    assert not core.ready()
    assert list((tmp_path / "s").iterdir()) == []


class _ToyRedact:
    """A real text rewrite under the redaction stage's name (issue 3 supplies the real one)."""

    name = "redact"
    failure_flag = None

    def process(self, records) -> None:
        for record in records:
            for message in record.content.input_messages:
                for part in message.get("parts", []):
                    part["content"] = part["content"].replace("alice@example.com", "<EMAIL>")


def test_in_process_redaction_marks_spans_and_the_gateway_does_not_redact_again(
        store, keystore, tmp_path, make_span):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from genai_audit.exporter.preprocess import ProcessedSpanExporter

    sent = InMemorySpanExporter()
    service = ProcessedSpanExporter(sent, RecordPipeline([_ToyRedact()]))
    email = '[{"role":"user","parts":[{"type":"text","content":"mail alice@example.com"}]}]'
    span = make_span(gen_ai__input__messages=email, gen_ai__prompt__0__content="alice@example.com")
    service.export([span])
    [copy] = sent.get_finished_spans()
    assert copy.attributes["genai_audit.processed"] == "redact"
    assert "alice@example.com" not in str(dict(copy.attributes))  # legacy key dropped too
    core, gateway_redact = _core(store, keystore, tmp_path)
    trusted = Principal(tenant="acme", trust_processed=True)
    core.export(trusted, encode_spans([copy]).SerializeToString(), as_json=False)
    assert gateway_redact.seen == []
    [(rid, stored)] = store.rows("SELECT toString(id), full_prompt_text FROM interactions")
    assert "alice@example.com" not in stored  # ciphertext at rest
    from genai_audit.clickhouse.disclosure import disclose

    [read] = disclose(store, keystore, [rid], actor="test", purpose="redaction check")
    prompt = read.prompt_text or ""
    assert "<EMAIL>" in prompt and "alice@example.com" not in prompt
