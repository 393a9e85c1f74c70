"""Fault tests on loopback, bounded in count and time: bad input, store outage, kill -9."""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from gateway_harness import TOKENS, Gateway, free_port, query
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {TOKENS['acme']}"}


def post(gw: Gateway, body: bytes, *, ctype: str = "application/x-protobuf",
         headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(gw.http + "/v1/traces", data=body, headers={
        "Content-Type": ctype, **AUTH, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_mixed_good_and_bad_input(tmp_path, tokens_file, gateways, make_span):
    gw = Gateway(tmp_path, f"chdb://{tmp_path / 'store'}", tokens_file=tokens_file,
                 extra=["--max-attribute-kb", "1", "--max-message-mb", "1"]).start()
    gateways.append(gw)
    good = make_span(genai_audit__tool="good")
    utf8 = make_span(genai_audit__tool="utf8", enduser__id="bob-MARK")
    big = make_span(genai_audit__tool="big", gen_ai__input__messages="x" * 5000)
    spoof = make_span(genai_audit__tool="spoof", tenant__id="globex")
    broken = make_span(genai_audit__tool="broken")
    request = encode_spans([good, utf8, big, spoof, broken])
    request.resource_spans[0].scope_spans[0].spans[4].span_id = b"\x00" * 8
    body = request.SerializeToString().replace(b"bob-MARK", b"bob\xff\xfeARK")
    body += b"\xf8\x07\x01"  # an unknown field (a newer OTLP): ignored, counted
    status, payload, _ = post(gw, body)
    assert status == 200
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(payload)
    assert response.partial_success.rejected_spans == 2
    assert "tenant_mismatch=1" in response.partial_success.error_message
    assert "invalid_span_id=1" in response.partial_success.error_message

    gz = gzip.compress(encode_spans([make_span(genai_audit__tool="gzip")]).SerializeToString())
    assert post(gw, gz, headers={"Content-Encoding": "gzip"})[0] == 200
    data = ({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "chat", "startTimeUnixNano": str(time.time_ns()),
        "endTimeUnixNano": str(time.time_ns() + 5 * 10**8), "futureField": True,
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "genai_audit.tool": "json"}.items()]}]}]}]})
    status, payload, headers = post(gw, json.dumps(data).encode(), ctype="application/json")
    assert status == 200 and headers["Content-Type"] == "application/json", payload

    for body_, ctype, extra, code in (
            (b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", {}, 400),
            (b"{broken", "application/json", {}, 400),
            (b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400),
            (b"x", "text/plain", {}, 415),
            (b"\0" * (1024 * 1024 + 1), "application/x-protobuf", {}, 413),
            (gzip.compress(b"\0" * (2 * 1024 * 1024)), "application/x-protobuf",
             {"Content-Encoding": "gzip"}, 413)):
        assert post(gw, body_, ctype=ctype, headers=extra)[0] == code, (ctype, extra)
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    with grpc.insecure_channel(gw.grpc) as channel:  # gRPC: refused and counted alike
        with pytest.raises(grpc.RpcError) as rpc:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                encode_spans([make_span(gen_ai__input__messages="z" * 1_500_000)]),
                timeout=30, metadata=(("authorization", AUTH["Authorization"]),))
    assert rpc.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "above the limit" in (rpc.value.details() or "")
    metrics = gw.metrics()
    assert metrics['rejected_spans_total{reason="malformed"}'] == 3
    assert metrics['rejected_spans_total{reason="too_large"}'] == 3
    assert metrics["invalid_utf8_requests_total"] == 1
    assert metrics["unknown_field_requests_total"] == 1
    assert metrics["truncated_spans_total"] == 1
    assert gw.stop() == 0
    rows = {r["tool_name"]: r for r in query(
        gw.dsn, "SELECT tool_name, flags, tenant_id FROM interactions")}
    assert sorted(rows) == ["big", "good", "gzip", "json", "utf8"]
    assert "invalid_utf8" in rows["utf8"]["flags"]
    assert "content_truncated" in rows["big"]["flags"]


def _wait(condition, failure: str, timeout: float = 30) -> None:
    """Until ``condition()`` holds, re-checked every 0.1 s; fail with ``failure`` after
    ``timeout`` (a deadline on a condition, not a margin on the wall clock)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, failure
        pause.wait(0.1)


class Load:
    """Steady load: numbered batches of spans posted one after another; records acks."""

    def __init__(self, gw: Gateway, make_span, *, batch: int = 5) -> None:
        self.gw, self.make_span, self.batch = gw, make_span, batch
        self.sent: list[tuple[list[str], bytes]] = []  # (span ids, body), acked or not
        self.acked: list[str] = []
        self.failures = 0
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def wait_for(self, acked: int, timeout: float = 60) -> None:
        """Until at least ``acked`` spans were acknowledged (or a send failed)."""
        with self._progress:
            assert self._progress.wait_for(
                lambda: len(self.acked) >= acked or self.failures > 0, timeout), \
                f"only {len(self.acked)} spans acknowledged in {timeout} s"

    def send_one(self, spans=None) -> bool:
        spans = spans or [self.make_span() for _ in range(self.batch)]
        ids = [f"{s.context.span_id:016x}" for s in spans]
        body = encode_spans(spans).SerializeToString()
        self.sent.append((ids, body))
        try:
            status, _, _ = post(self.gw, body)
        except OSError:
            status = 0
        with self._progress:
            if status == 200:
                self.acked += ids
            else:
                self.failures += 1
            self._progress.notify_all()
        return status == 200

    def _run(self) -> None:
        while not self._stop.wait(0.02):  # pace the load a little
            self.send_one()


def test_store_unavailable_under_load_then_back(tmp_path, tokens_file, gateways, make_span):
    """Phase 1: the store DSN points at a closed loopback port (a real connection failure
    in clickhouse-connect): every batch is acknowledged from the spool. Phase 2: the same
    spool, the gateway restarted against a reachable store (the embedded engine: there is
    no ClickHouse server here to take down and bring back within one run): it drains the
    spool, takes new load, and every span is stored exactly once."""
    spool = tmp_path / "spool"
    down = Gateway(tmp_path, f"http://writer:pw@127.0.0.1:{free_port()}",
                   tokens_file=tokens_file, spool_dir=spool).start()
    gateways.append(down)
    load = Load(down, make_span).start()
    load.wait_for(acked=25)
    load.stop()
    metrics = down.metrics()
    assert load.failures == 0 and len(load.acked) >= 25
    assert metrics["spooled_records_total"] == len(load.acked)
    assert metrics["spool_records"] == len(load.acked)
    assert down.stop() == 0

    dsn = f"chdb://{tmp_path / 'store'}"
    up = Gateway(tmp_path, dsn, tokens_file=tokens_file, spool_dir=spool).start()
    gateways.append(up)
    load.gw = up
    load._stop.clear()
    load._thread = threading.Thread(target=load._run, daemon=True)
    load.start()
    load.wait_for(acked=len(load.acked) + 25)  # new load taken while (or after) draining
    load.stop()
    _wait(lambda: up.metrics()["spool_batches"] == 0, "the spool never drained")
    metrics = up.metrics()
    assert load.failures == 0
    assert metrics["spool_batches"] == 0 and metrics["drained_records_total"] >= 25
    assert up.stop() == 0
    [counts] = query(dsn, "SELECT count() AS n, uniqExact(span_id) AS u FROM interactions")
    assert counts == {"n": len(load.acked), "u": len(load.acked)}


def test_sigkill_mid_load_loses_no_acknowledged_span(tmp_path, tokens_file, gateways,
                                                     make_span):
    dsn = f"chdb://{tmp_path / 'store'}"
    first = Gateway(tmp_path, dsn, tokens_file=tokens_file).start()
    gateways.append(first)
    load = Load(first, make_span).start()
    load.wait_for(acked=60, timeout=30)
    first.kill()  # SIGKILL mid-load
    load.stop()
    acked_before = set(load.acked)
    assert len(acked_before) >= 60
    # Restart on the same store and spool; the sender replays everything it sent (a
    # collector replays what it did not get an answer for; here even acknowledged ones).
    second = Gateway(tmp_path, dsn, tokens_file=tokens_file).start()
    gateways.append(second)
    assert [post(second, body)[0] for _, body in load.sent] == [200] * len(load.sent)
    assert second.metrics()["duplicate_records_total"] >= len(acked_before)
    assert second.stop() == 0
    rows = query(dsn, "SELECT span_id, count() AS n FROM interactions GROUP BY span_id")
    stored = {r["span_id"]: r["n"] for r in rows}
    assert acked_before <= set(stored), "an acknowledged span was lost"
    assert set(stored.values()) == {1}, "a span was stored twice"
    assert set(stored) == {i for ids, _ in load.sent for i in ids}


def test_spool_full_answers_retryable_on_both_protocols(tmp_path, tokens_file, gateways,
                                                        make_span):
    import grpc
    from google.rpc import error_details_pb2, status_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    gw = Gateway(tmp_path, f"http://writer:pw@127.0.0.1:{free_port()}",
                 tokens_file=tokens_file, extra=["--spool-max-mb", "1"]).start()
    gateways.append(gw)
    big = "y" * 20_000
    statuses = []
    for _ in range(80):  # ~20 KB per record: the 1 MB spool fills within ~50 records
        status, _, headers = post(gw, encode_spans(
            [make_span(gen_ai__input__messages=big)]).SerializeToString())
        statuses.append(status)
        if status != 200:
            break
    assert statuses[0] == 200 and statuses[-1] == 503
    assert int(headers["Retry-After"]) > 0
    with grpc.insecure_channel(gw.grpc) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as rpc:
            stub.Export(encode_spans([make_span(gen_ai__input__messages=big)]), timeout=30,
                        metadata=(("authorization", AUTH["Authorization"]),))
    assert rpc.value.code() is grpc.StatusCode.UNAVAILABLE
    trailers = dict(rpc.value.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.seconds > 0
    urllib.request.urlopen(gw.http + "/healthz", timeout=10)
    with pytest.raises(urllib.error.HTTPError) as ready:
        urllib.request.urlopen(gw.http + "/readyz", timeout=10)
    assert ready.value.code == 503
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    with grpc.insecure_channel(gw.grpc) as channel:
        checker = health_pb2_grpc.HealthStub(channel)
        _wait(lambda: checker.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
              .status == health_pb2.HealthCheckResponse.NOT_SERVING,  # follows readiness
              "gRPC health never reported NOT_SERVING")
    assert gw.metrics()['rejected_spans_total{reason="unavailable"}'] == 2
    assert gw.stop() == 0


def _mount_tmpfs(path, size: str) -> bool:
    """A real small tmpfs, when this test may mount one (root); else the test skips (the
    spool's write seam covers the same refusals everywhere: tests/unit/test_spool.py)."""
    import os
    import shutil
    import subprocess
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True).returncode == 0


def test_a_full_spool_disk_acknowledges_only_what_landed(tmp_path, tokens_file, gateways,
                                                         make_span):
    """The probe: spool on a 1 MiB tmpfs, store down: 660 acknowledged, 640 landed (a cut
    batch file was quarantined on drain) and /readyz said ready while every request got
    503. Now: every acknowledged span lands, and readiness follows the refusals."""
    import subprocess
    disk = tmp_path / "tmpfs"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("mounting a tmpfs is not permitted here (needs root)")
    try:
        spool = disk / "spool"
        down = Gateway(tmp_path, f"http://writer:pw@127.0.0.1:{free_port()}",
                       tokens_file=tokens_file, spool_dir=spool).start()
        gateways.append(down)
        load = Load(down, make_span, batch=10)
        statuses = []
        for _ in range(400):
            statuses.append(200 if load.send_one() else 503)
            if statuses[-1] != 200:
                break
        assert statuses[0] == 200 and statuses[-1] == 503, statuses[-3:]
        with pytest.raises(urllib.error.HTTPError) as ready:
            urllib.request.urlopen(down.http + "/readyz", timeout=10)
        assert ready.value.code == 503
        assert not list(spool.glob("*.tmp"))
        assert down.stop() == 0
        dsn = f"chdb://{tmp_path / 'store'}"
        up = Gateway(tmp_path, dsn, tokens_file=tokens_file, spool_dir=spool).start()
        gateways.append(up)
        urllib.request.urlopen(up.http + "/readyz", timeout=10)  # drained: ready again
        assert up.stop() == 0
        assert not (spool / "quarantine").exists()
        rows = query(dsn, "SELECT span_id FROM interactions")
        assert sorted(r["span_id"] for r in rows) == sorted(load.acked)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
