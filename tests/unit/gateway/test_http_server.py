"""The OTLP/HTTP listener's transport on loopback: framing, limits, timeouts, status codes.

A real ``GatewayCore`` (decode, tenancy) in front of a sink that keeps what it was handed;
the store and spool behind it are the integration tests' business.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from genai_audit.exporter.gateway.auth import Authenticator
from genai_audit.exporter.gateway.core import GatewayCore
from genai_audit.exporter.gateway.http_server import HttpLimits, HttpListener, start_http
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.processor.pipeline import RecordPipeline

LIMIT = 64 * 1024
PB = {"Content-Type": "application/x-protobuf"}


class _KeepingSink:
    def __init__(self) -> None:
        self.records: list = []

    def submit(self, records) -> str:
        self.records += records
        return "stored"

    def ready(self) -> bool:
        return True


def _start(limits: HttpLimits) -> tuple[HttpListener, _KeepingSink]:
    sink = _KeepingSink()
    core = GatewayCore(auth=Authenticator({}, True), pipeline=RecordPipeline([]), sink=sink,
                       metrics=Metrics(), tenant_mismatch="reject", max_attribute_chars=4096)
    return start_http(core, "127.0.0.1:0", max_message_bytes=LIMIT, tls_files=None,
                      reuse_port=False, limits=limits), sink


@pytest.fixture
def server() -> Iterator[tuple[HttpListener, _KeepingSink]]:
    listener, sink = _start(HttpLimits(max_connections=4, idle_timeout_s=0.5,
                                       header_timeout_s=1.0, body_timeout_s=1.0))
    yield listener, sink
    listener.stop()


def _post(listener, body, headers, *, path="/v1/traces", method="POST", chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
    try:
        if chunked:
            parts = [body[i:i + 1000] for i in range(0, len(body), 1000)] or [b""]
            conn.request(method, path, body=iter(parts), headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) before ``seconds`` pass."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_chunked_bodies_are_accepted(server, make_span):
    """The OTel JS exporter sends Transfer-Encoding: chunked (the gateway answered 411)."""
    listener, sink = server
    spans = [make_span() for _ in range(3)]
    assert _post(listener, encode_spans(spans).SerializeToString(), PB, chunked=True)[0] == 200
    gz = gzip.compress(encode_spans([make_span()]).SerializeToString())
    assert _post(listener, gz, {**PB, "Content-Encoding": "gzip"}, chunked=True)[0] == 200
    assert len(sink.records) == 4


def test_chunked_bodies_are_bounded_and_checked(server):
    listener, _ = server
    assert _post(listener, b"\0" * (LIMIT + 1), PB, chunked=True)[0] == 413
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\nab\r\n0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    for extra in ({"Transfer-Encoding": "gzip, chunked"},):
        assert _post(listener, b"x", {**PB, **extra, "Content-Length": "1"})[0] == 400
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/x-protobuf\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 501")


def test_gzip_cut_short_or_followed_by_garbage_is_refused(server, make_span):
    listener, sink = server
    whole = gzip.compress(encode_spans([make_span()]).SerializeToString())
    gz = {**PB, "Content-Encoding": "gzip"}
    status, body = _post(listener, whole[:-12], gz)
    assert status == 400 and b"cut short" in body
    status, body = _post(listener, whole + b"garbage", gz)
    assert status == 400 and b"not gzip" in body
    two = whole + gzip.compress(encode_spans([make_span()]).SerializeToString())
    assert _post(listener, two, gz)[0] == 200  # two gzip members: a valid gzip stream
    assert len(sink.records) == 2  # concatenated protobuf requests merge: both spans
    assert _post(listener, gzip.compress(b"\0" * (LIMIT + 1)), gz)[0] == 413


def test_status_codes_for_paths_methods_and_types(server):
    listener, _ = server
    for method, path, expected in (("POST", "/v1/logs", 200), ("POST", "/v1/metrics", 200),
                                   ("PUT", "/v1/metrics", 405), ("GET", "/v1/logs", 405),
                                   ("POST", "/v1/other", 404),
                                   ("DELETE", "/nowhere", 404), ("PUT", "/v1/traces", 405),
                                   ("GET", "/v1/traces", 405), ("PATCH", "/v1/traces", 405)):
        assert _post(listener, b"", PB, path=path, method=method)[0] == expected, (method, path)
    assert _post(listener, b"x", {"Content-Type": "text/plain"})[0] == 415
    assert _post(listener, b"\xff\x01", PB, path="/v1/logs")[0] == 400  # not OTLP logs
    assert _post(listener, b"[]", {"Content-Type": "application/json"},
                 path="/v1/metrics")[0] == 400
    assert _post(listener, b"x", {**PB, "Content-Encoding": "br"})[0] == 415


def test_idle_and_slow_connections_are_closed(server):
    listener, _ = server
    with socket.create_connection(("127.0.0.1", listener.port)) as idle:
        assert _closed_within(idle, 5.0), "an idle connection was never closed"
    with socket.create_connection(("127.0.0.1", listener.port)) as slow:
        slow.sendall(b"POST /v1/traces HTTP/1.1\r\n")  # then one header byte at a time
        started, closed = time.monotonic(), False
        while not closed and time.monotonic() - started < 8:
            try:
                slow.sendall(b"X")
            except OSError:
                closed = True
            closed = closed or _closed_within(slow, 0.2)
        assert closed and time.monotonic() - started < 5, "slow headers held the connection"
    with socket.create_connection(("127.0.0.1", listener.port)) as short:
        short.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/x-protobuf\r\nContent-Length: 100\r\n\r\n0123456789")
        assert _closed_within(short, 5.0), "a body that never arrives held the connection"


def test_connections_and_threads_are_bounded():
    """400 half-open sockets made 445 threads: now a fixed pool, the rest answered 503."""
    listener, _ = _start(HttpLimits(max_connections=4, idle_timeout_s=30.0))
    before = {t.ident for t in threading.enumerate()}
    held = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(4)]
    try:
        for sock in held:  # served once, then kept alive: each holds its slot while idle
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(10)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        extra = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(20)]
        answers = []
        for sock in extra:
            sock.settimeout(10)
            answers.append(sock.recv(4096))
            sock.close()
        assert all(a.startswith(b"HTTP/1.1 503") for a in answers), answers[:2]
        new_threads = [t for t in threading.enumerate() if t.ident not in before]
        assert len(new_threads) <= 4
        assert listener.server.core.metrics.value("http_connections_refused") == 20
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10  # closed connections give their slots back
    while _post(listener, b"", {}, path="/healthz", method="GET")[0] != 200:
        assert time.monotonic() < deadline
    listener.stop()
