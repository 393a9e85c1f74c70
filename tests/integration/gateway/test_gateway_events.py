"""Acceptance: GenAI log events over OTLP (official gRPC and HTTP log exporters, OTLP/JSON)
joined to their span's record at the gateway, redacted and encrypted; metrics accepted.

A real ``GatewayCore`` (the default pipeline: redaction, encryption...) on the test's
embedded store, behind its real HTTP and gRPC listeners on loopback.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import json_format
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource

from genai_audit.clock import ManualClock
from genai_audit.config import Settings
from genai_audit.exporter.gateway.auth import Authenticator, Principal, hash_token
from genai_audit.exporter.gateway.core import GatewayCore
from genai_audit.exporter.gateway.grpc_server import start_grpc
from genai_audit.exporter.gateway.http_server import start_http
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.sink import LocalSink
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.exporter.spool import Spool
from genai_audit.processor.events import EventJoiner
from genai_audit.processor.factory import default_pipeline

pytestmark = pytest.mark.integration

TOKEN = "events-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
EMAIL = "maria.novak@clinic.org"
PROMPT = f"Write to {EMAIL} about the invoice"
ANSWER = f"Sure, I will mail {EMAIL} today"


class Gateway:
    def __init__(self, store, keystore, tmp_path, clock: ManualClock) -> None:
        settings = Settings.load({"max_retries": 0, "ledger_checkpoint_seconds": 3600}, env={})
        exporter = ClickHouseSpanExporter(settings, store=store, skip_stored=True,
                                          spool=Spool(tmp_path / "spool", 10**7))
        self.metrics = Metrics()
        auth = Authenticator({hash_token(TOKEN): Principal(tenant="acme", name="acme")},
                             False)
        self.core = GatewayCore(auth=auth, pipeline=default_pipeline(settings, keystore),
                                sink=LocalSink(exporter, self.metrics), metrics=self.metrics,
                                tenant_mismatch="reject", max_attribute_chars=100_000,
                                joiner=EventJoiner(hold_s=30.0, clock=clock))
        self.http = start_http(self.core, "127.0.0.1:0", max_message_bytes=10**7,
                               tls_files=None, reuse_port=False)
        self.grpc = start_grpc(self.core, "127.0.0.1:0", max_message_bytes=10**7, tls=None,
                               reuse_port=False, threads=4)

    def close(self) -> None:
        self.http.stop()
        self.grpc.stop(1.0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gateway(store, keystore, tmp_path, clock) -> Iterator[Gateway]:
    gw = Gateway(store, keystore, tmp_path, clock)
    yield gw
    gw.close()


def _events(span) -> list[LogRecord]:
    """What openai-v2 emits for one call in legacy event mode (content capture on)."""
    ctx = span.context
    common = {"trace_id": ctx.trace_id, "span_id": ctx.span_id, "trace_flags": ctx.trace_flags,
              "attributes": {"gen_ai.system": "openai"}}
    return [LogRecord(event_name="gen_ai.system.message", body={"content": "Be brief."},
                      timestamp=1, **common),
            LogRecord(event_name="gen_ai.user.message", body={"content": PROMPT},
                      timestamp=2, **common),
            LogRecord(event_name="gen_ai.choice", timestamp=3, body={
                "index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": ANSWER}}, **common),
            LogRecord(body="an ordinary application log line", timestamp=4, **common)]


def _emit(exporter, span) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "py-svc"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("opentelemetry.instrumentation.openai_v2")
    for record in _events(span):
        logger.emit(record)
    provider.shutdown()


def _json_logs(span) -> bytes:
    """The same events as an OTLP/JSON body (hex ids, as the OTLP/JSON encoding has them)."""
    provider = LoggerProvider(resource=Resource.create({"service.name": "js-svc"}))
    captured: list = []

    class _Keep:
        def on_emit(self, record) -> None:
            captured.append(record)

        def shutdown(self) -> None: ...

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    provider.add_log_record_processor(_Keep())  # type: ignore[arg-type]
    logger = provider.get_logger("js")
    for record in _events(span):
        logger.emit(record)
    data = json.loads(json_format.MessageToJson(encode_logs(captured)))
    for rl in data["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for lr in sl["logRecords"]:
                lr["traceId"] = f"{span.context.trace_id:032x}"
                lr["spanId"] = f"{span.context.span_id:016x}"
    return json.dumps(data).encode()


def _post(gw: Gateway, path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{gw.http.port}{path}", data=body,
                                     method="POST",
                                     headers={"Content-Type": ctype, **AUTH})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def _send_span(gw: Gateway, span) -> None:
    status, _ = _post(gw, "/v1/traces", encode_spans([span]).SerializeToString(),
                      "application/x-protobuf")
    assert status == 200


def _content_less(make_span):
    """A span of openai-v2 in event mode: usage and model, no content attributes."""
    return make_span(gen_ai__input__messages=None, gen_ai__output__messages=None,
                     tenant__id="acme")


def _disclosed(store, keystore, span) -> tuple[str, str, list[str]]:
    from genai_audit.clickhouse.disclosure import disclose

    [(record_id, state, flags)] = store.rows(
        "SELECT id, content_state, flags FROM interactions WHERE span_id = {s:String}",
        {"s": f"{span.context.span_id:016x}"})
    assert state == "encrypted", (state, flags)
    [read] = disclose(store, keystore, [str(record_id)], actor="test", purpose="events")
    return read.prompt_text, read.response_text, list(flags)


@pytest.mark.parametrize("door", ["grpc", "http-protobuf", "http-json"])
def test_events_then_span_are_joined_redacted_and_encrypted(door, gateway, store, keystore,
                                                            make_span):
    span = _content_less(make_span)
    if door == "grpc":
        _emit(GrpcLogExporter(endpoint=f"127.0.0.1:{gateway.grpc.port}", insecure=True,
                              headers=AUTH), span)
    elif door == "http-protobuf":
        _emit(HttpLogExporter(endpoint=f"http://127.0.0.1:{gateway.http.port}/v1/logs",
                              headers=AUTH), span)
    else:
        status, body = _post(gateway, "/v1/logs", _json_logs(span), "application/json")
        assert status == 200 and json.loads(body) == {}
    assert gateway.metrics.value("genai_events") == 3
    assert gateway.metrics.value("ignored_log_records") == 1
    _send_span(gateway, span)
    prompt, response, flags = _disclosed(store, keystore, span)
    assert "content_not_captured" not in flags
    assert "Write to" in prompt and "Be brief." in prompt and "Sure, I will mail" in response
    assert EMAIL not in prompt + response and "<EMAIL_ADDRESS_1>" in prompt
    everything = repr(store.rows("SELECT * FROM interactions"))
    assert EMAIL not in everything and "invoice" not in everything  # encrypted at rest
    assert gateway.core.joiner.held() == 0


def test_events_of_another_tenants_token_do_not_join(gateway, store, keystore, make_span):
    span = _content_less(make_span)
    other = Principal(tenant="globex", name="globex")
    body = encode_logs([]).SerializeToString()  # an empty request is valid
    assert gateway.core.export_logs(other, body, as_json=False).accepted == 0
    provider = LoggerProvider()
    kept: list = []

    class _Keep:
        def on_emit(self, record) -> None:
            kept.append(record)

        def shutdown(self) -> None: ...

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    provider.add_log_record_processor(_Keep())  # type: ignore[arg-type]
    for record in _events(span):
        provider.get_logger("x").emit(record)
    gateway.core.export_logs(other, encode_logs(kept).SerializeToString(), as_json=False)
    _send_span(gateway, span)  # acme's token
    [(state, flags)] = store.rows("SELECT content_state, flags FROM interactions")
    assert state == "not_captured" and "content_not_captured" in flags
    assert gateway.core.joiner.held() == 3  # globex's events wait for a globex span


def test_events_whose_span_never_arrives_are_dropped_after_the_bound(gateway, store, clock,
                                                                     make_span):
    span = _content_less(make_span)
    _emit(HttpLogExporter(endpoint=f"http://127.0.0.1:{gateway.http.port}/v1/logs",
                          headers=AUTH), span)
    assert gateway.core.joiner.held() == 3
    clock.advance(29)
    _send_span(gateway, make_span(tenant__id="acme"))  # another call: expiry runs, not yet
    assert gateway.core.joiner.held() == 3
    clock.advance(2)
    _send_span(gateway, make_span(tenant__id="acme"))
    assert gateway.core.joiner.held() == 0
    assert gateway.metrics.value("dropped_events") == 3
    _send_span(gateway, span)  # too late: its events are gone, never stored on their own
    [(state,)] = store.rows("SELECT content_state FROM interactions WHERE span_id = "
                            "{s:String}", {"s": f"{span.context.span_id:016x}"})
    assert state == "not_captured"
    assert "invoice" not in repr(store.rows("SELECT * FROM interactions"))


def test_metrics_are_accepted_counted_and_dropped(gateway, store):
    for exporter in (GrpcMetricExporter(endpoint=f"127.0.0.1:{gateway.grpc.port}",
                                        insecure=True, headers=AUTH),
                     HttpMetricExporter(endpoint=f"http://127.0.0.1:{gateway.http.port}"
                                                 "/v1/metrics", headers=AUTH)):
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("m").create_counter("gen_ai.client.token.usage").add(5)
        assert exporter.export(reader.get_metrics_data()) is MetricExportResult.SUCCESS
        exporter.shutdown()
    assert gateway.metrics.value("metric_requests") == 2
    assert gateway.metrics.value("dropped_metrics") == 2
    assert "genai_audit_gateway_dropped_metrics_total 2" in gateway.metrics.render()
    status, body = _post(gateway, "/v1/metrics", b'{"resourceMetrics": []}', "application/json")
    assert status == 200 and json.loads(body) == {}
    assert store.rows("SELECT count() FROM interactions") == [(0,)]
    with pytest.raises(grpc.RpcError) as refused:  # no token: refused as traces are
        channel = grpc.insecure_channel(f"127.0.0.1:{gateway.grpc.port}")
        channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            request_serializer=None, response_deserializer=None)(b"", timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _in_thread(fn, *args):
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _prime(gateway: Gateway, make_span) -> None:
    """acme has sent GenAI events lately (for another call): its spans may wait for theirs."""
    _emit(HttpLogExporter(endpoint=f"http://127.0.0.1:{gateway.http.port}/v1/logs",
                          headers=AUTH), _content_less(make_span))


def test_a_span_before_its_events_waits_for_them_bounded(gateway, store, keystore,
                                                         make_span):
    _prime(gateway, make_span)
    span = _content_less(make_span)
    thread, errors = _in_thread(_send_span, gateway, span)  # the span first
    assert gateway.core.joiner.await_waiters(1, 30)  # its request waits for the events
    _emit(GrpcLogExporter(endpoint=f"127.0.0.1:{gateway.grpc.port}", insecure=True,
                          headers=AUTH), span)
    thread.join(30)
    assert not thread.is_alive() and not errors
    prompt, response, flags = _disclosed(store, keystore, span)
    assert "Write to" in prompt and "Sure, I will mail" in response
    assert EMAIL not in prompt + response and "content_not_captured" not in flags
    assert gateway.metrics.value("event_waits") == 1


def test_a_span_whose_events_do_not_come_is_written_after_the_wait(gateway, store, clock,
                                                                   make_span):
    _prime(gateway, make_span)
    span = _content_less(make_span)
    thread, errors = _in_thread(_send_span, gateway, span)
    assert gateway.core.joiner.await_waiters(1, 30)
    clock.advance(2.5)  # past the gateway's wait (2 s of clock time)
    thread.join(30)
    assert not thread.is_alive() and not errors
    [(state, flags)] = store.rows("SELECT content_state, flags FROM interactions")
    assert state == "not_captured" and "content_not_captured" in flags
    assert "events_not_joined" in flags  # its tenant sends events; none came for it
    # events arriving after their span's record was written never join, never land
    _emit(HttpLogExporter(endpoint=f"http://127.0.0.1:{gateway.http.port}/v1/logs",
                          headers=AUTH), span)
    clock.advance(31)
    _send_span(gateway, make_span(tenant__id="acme"))  # runs the expiry
    assert gateway.core.joiner.held() == 0
    assert gateway.metrics.value("dropped_events") == 6  # the primer's and these
    assert "invoice" not in repr(store.rows("SELECT * FROM interactions"))


def test_event_content_is_redacted_here_even_for_a_trusted_processed_sender(gateway, store,
                                                                            keystore,
                                                                            make_span):
    """A trusted sender's spans may skip redaction (it ran in the sender's process); the
    content its events bring was never redacted there, so its record is redacted here."""
    trusted = Principal(tenant="acme", name="acme", trust_processed=True)
    span = make_span(gen_ai__input__messages=None, gen_ai__output__messages=None,
                     tenant__id="acme", genai_audit__processed="redact")
    provider = LoggerProvider()
    kept: list = []

    class _Keep:
        def on_emit(self, record) -> None:
            kept.append(record)

        def shutdown(self) -> None: ...

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    provider.add_log_record_processor(_Keep())  # type: ignore[arg-type]
    for record in _events(span):
        provider.get_logger("x").emit(record)
    gateway.core.export_logs(trusted, encode_logs(kept).SerializeToString(), as_json=False)
    gateway.core.export(trusted, encode_spans([span]).SerializeToString(), as_json=False)
    prompt, response, _ = _disclosed(store, keystore, span)
    assert "Write to" in prompt and EMAIL not in prompt + response


def test_events_claiming_another_tenant_are_rejected_as_spans_are(gateway, make_span):
    span = _content_less(make_span)
    provider = LoggerProvider(resource=Resource.create({"tenant.id": "globex"}))
    kept: list = []

    class _Keep:
        def on_emit(self, record) -> None:
            kept.append(record)

        def shutdown(self) -> None: ...

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    provider.add_log_record_processor(_Keep())  # type: ignore[arg-type]
    for record in _events(span):
        provider.get_logger("x").emit(record)
    status, body = _post(gateway, "/v1/logs", encode_logs(kept).SerializeToString(),
                         "application/x-protobuf")
    assert status == 200
    answer = ExportLogsServiceResponse.FromString(body).partial_success
    assert answer.rejected_log_records == 3
    assert answer.error_message == "3 log record(s) rejected: tenant_mismatch=3"
    assert gateway.core.joiner.held() == 0
