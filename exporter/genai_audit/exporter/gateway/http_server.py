"""OTLP/HTTP (``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``; protobuf or JSON, gzip)
plus health, readiness, metrics.

Status codes follow the OTLP/HTTP specification; error bodies are a ``google.rpc.Status``
in the request's encoding:

* 200 with ``partial_success`` when some spans were rejected;
* 400 malformed body (including gzip cut short or followed by other data, bad chunked
  framing), 401 missing/unknown bearer token, 404 other paths (any method), 405 another
  method on an OTLP path, 411 neither Content-Length nor chunked, 413 body (or its
  gunzipped form) above the limit, 415 other content types or encodings, 501 a transfer
  coding other than chunked;
* 503 + ``Retry-After`` when neither the store nor the spool can take the batch (retryable:
  OTLP clients and the collector retry 429/502/503/504), or when every connection slot is
  taken.

``GET /healthz``: the process is up. ``GET /readyz``: it can accept data (the store owner
answers and the spool has room). ``GET /metrics``: Prometheus text.

The server is bounded (``HttpLimits``): a fixed pool of connection threads (a connection
beyond it is answered 503 and closed, never queued on a new thread), an idle timeout
between requests, one deadline for the request line and headers and one for the body
(slow senders cannot hold a thread), and the body limit for every transfer encoding,
before and after gunzip (``http_body``).
"""

from __future__ import annotations

import io
import json
import logging
import socket
import socketserver
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from genai_audit.exporter.gateway.core import (
    AuthError,
    GatewayCore,
    MalformedRequest,
    Unavailable,
    timed,
)
from genai_audit.exporter.gateway.decode import encode_response
from genai_audit.exporter.gateway.decode_logs import (
    encode_logs_response,
    encode_metrics_response,
)
from genai_audit.exporter.gateway.http_body import DeadlineReader, Refused, read_body
from genai_audit.exporter.gateway.metrics import Metrics

_log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
METRICS_PATH = "/v1/metrics"
OTLP_PATHS = frozenset({TRACES_PATH, LOGS_PATH, METRICS_PATH})
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


@dataclass(frozen=True)
class HttpLimits:
    """What one HTTP listener (per process) bounds. See docs/deploy.md."""

    max_connections: int = 64  # connection threads; one more is answered 503 and closed
    idle_timeout_s: float = 15.0  # a kept-alive connection waits this long for a request
    header_timeout_s: float = 10.0  # request line + headers, from their first byte
    body_timeout_s: float = 60.0  # the whole body, from the end of the headers
    write_timeout_s: float = 10.0  # sending one response


class BoundedHTTPServer(HTTPServer):
    """An HTTP server bounded by ``HttpLimits``; ``handler`` serves its requests."""

    request_queue_size = 128
    handler: type[BaseHTTPRequestHandler]
    refused_metric = "http_connections_refused"

    def __init__(self, address: tuple[str, int], metrics: Metrics, *,
                 max_message_bytes: int, tls: ssl.SSLContext | None, reuse_port: bool,
                 limits: HttpLimits | None = None) -> None:
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.reuse_port = reuse_port
        self.tls = tls
        self.limits = limits or HttpLimits()
        self.closing = False
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self._pool = ThreadPoolExecutor(max_workers=self.limits.max_connections,
                                        thread_name_prefix="genai-audit-http")
        self._idle: set[socket.socket] = set()  # connections waiting for their next request
        self._idle_lock = threading.Lock()
        super().__init__(address, self.handler)

    def server_bind(self) -> None:
        if self.reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: no reverse DNS lookup
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        if self.tls is not None:
            self.socket = self.tls.wrap_socket(self.socket, server_side=True,
                                               do_handshake_on_connect=False)

    # -- a bounded pool instead of a thread per connection ------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        if self.closing or not self._slots.acquire(blocking=False):
            self.metrics.inc(self.refused_metric)
            _refuse_connection(request, self.tls is not None)
            self.shutdown_request(request)
            return
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # the pool is shutting down
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception as exc:
            self.handle_error(request, client_address, exc)
        finally:
            self.idle(request, False)
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any,  # type: ignore[override]
                     exc: BaseException | None = None) -> None:
        _log.debug("http connection ended: %s", type(exc).__name__ if exc else "error")

    def idle(self, sock: socket.socket, waiting: bool) -> None:
        with self._idle_lock:
            (self._idle.add if waiting else self._idle.discard)(sock)

    def stop(self) -> None:
        """Stop accepting, close connections waiting between requests, let the requests
        in flight finish (each is bounded by the body deadline and its export)."""
        self.closing = True
        self.shutdown()
        self.server_close()
        with self._idle_lock:
            for sock in self._idle:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._pool.shutdown(wait=True)


class GatewayHTTPServer(BoundedHTTPServer):
    """The OTLP/HTTP listener."""

    def __init__(self, address: tuple[str, int], core: GatewayCore, *,
                 max_message_bytes: int, tls: ssl.SSLContext | None, reuse_port: bool,
                 limits: HttpLimits | None = None) -> None:
        self.core = core
        super().__init__(address, core.metrics, max_message_bytes=max_message_bytes, tls=tls,
                         reuse_port=reuse_port, limits=limits)


def _refuse_connection(sock: Any, tls: bool) -> None:
    """Every slot is taken: say so (plaintext) and close; never start a thread."""
    if tls:
        return  # answering would need a TLS handshake on the accepting thread
    try:
        sock.settimeout(1.0)
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass


class BoundedHandler(BaseHTTPRequestHandler):
    """Requests on one connection of a ``BoundedHTTPServer``, under its deadlines."""

    server: BoundedHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "genai-audit-gateway"
    sys_version = ""

    def setup(self) -> None:
        self.connection = self.request
        self._reader = DeadlineReader(self.connection)
        self._buffered = io.BufferedReader(self._reader, 1 << 16)
        self.rfile = self._buffered
        self.wfile = socketserver._SocketWriter(self.connection)  # type: ignore[attr-defined]

    def handle(self) -> None:
        """Requests on one connection, each read against the idle and header deadlines."""
        limits = self.server.limits
        self.close_connection = True
        while not self.server.closing:
            self._reader.arm(limits.idle_timeout_s)
            self.server.idle(self.connection, True)
            try:
                if not self._buffered.peek(1):
                    return  # the client closed the connection
            except OSError:  # idle timeout, reset, or closed by stop()
                return
            finally:
                self.server.idle(self.connection, False)
            self._reader.arm(limits.header_timeout_s)
            self.handle_one_request()
            if self.close_connection:
                return

    # -- responses ------------------------------------------------------------------------
    def _plain(self, http: HTTPStatus, text: str, *, close: bool = False,
               headers: dict[str, str] | None = None) -> None:
        self._send(http, (text + "\n").encode(), "text/plain; charset=utf-8", close=close,
                   headers=headers)

    def _send(self, http: HTTPStatus, body: bytes, ctype: str, *, close: bool = False,
              headers: dict[str, str] | None = None) -> None:
        self.connection.settimeout(self.server.limits.write_timeout_s)
        self.send_response(http)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("http %s", json.dumps({"client": self.client_address[0],
                                          "line": format % args}))


class _Handler(BoundedHandler):
    server: GatewayHTTPServer

    # -- OTLP -----------------------------------------------------------------------------
    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in OTLP_PATHS:
            return self._plain(HTTPStatus.NOT_FOUND, "not found", close=True)
        core = self.server.core
        done = timed(core.metrics)
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        as_json = ctype == _JSON
        try:
            if ctype not in (_PROTOBUF, _JSON):
                core.metrics.reject("unsupported_media_type")
                return self._status(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, code_pb2.INVALID_ARGUMENT,
                                    f"Content-Type must be {_PROTOBUF} or {_JSON}", False,
                                    close=True)
            try:
                principal = core.authenticate(self.headers.get("Authorization"))
            except AuthError as exc:
                return self._status(HTTPStatus.UNAUTHORIZED, code_pb2.UNAUTHENTICATED, str(exc),
                                    as_json, close=True,
                                    headers={"WWW-Authenticate": 'Bearer realm="genai-audit"'})
            self._reader.arm(self.server.limits.body_timeout_s)
            try:
                body = read_body(self.rfile, self.headers, self.server.max_message_bytes)
            except Refused as refused:
                if refused.reason:
                    core.metrics.reject(refused.reason)
                return self._status(refused.status, code_pb2.INVALID_ARGUMENT, refused.message,
                                    as_json, close=True)
            try:
                if path == TRACES_PATH:
                    outcome = core.export(principal, body, as_json=as_json)
                    payload = encode_response(outcome.rejected_count, outcome.message(),
                                              as_json=as_json)
                elif path == LOGS_PATH:
                    outcome = core.export_logs(principal, body, as_json=as_json)
                    payload = encode_logs_response(outcome.rejected_count, outcome.message(),
                                                   as_json=as_json)
                else:
                    core.export_metrics(principal, body, as_json=as_json)
                    payload = encode_metrics_response(as_json=as_json)
            except MalformedRequest as exc:
                return self._status(HTTPStatus.BAD_REQUEST, code_pb2.INVALID_ARGUMENT, str(exc),
                                    as_json)
            except Unavailable as exc:
                return self._status(HTTPStatus.SERVICE_UNAVAILABLE, code_pb2.UNAVAILABLE,
                                    exc.reason, as_json,
                                    headers={"Retry-After": str(exc.retry_after)})
            return self._send(HTTPStatus.OK, payload, _JSON if as_json else _PROTOBUF)
        finally:
            done()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        core = self.server.core
        if path == "/healthz":
            return self._plain(HTTPStatus.OK, "ok")
        if path == "/readyz":
            ready = core.ready()
            return self._plain(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                               "ready" if ready else "not ready: store owner or spool")
        if path == "/metrics":
            return self._send(HTTPStatus.OK, core.metrics.render().encode(),
                              "text/plain; version=0.0.4; charset=utf-8")
        return self._other_method()

    def _other_method(self) -> None:
        """404 for a path this server does not serve, 405 for another method on an OTLP
        path; the body, if any, is not read, so the connection closes."""
        if self.path.split("?", 1)[0] in OTLP_PATHS:
            return self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "POST only", close=True,
                               headers={"Allow": "POST"})
        return self._plain(HTTPStatus.NOT_FOUND, "not found", close=True)

    do_HEAD = do_GET
    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method

    # -- the body: framing, limit, gzip ----------------------------------------------------
    # -- responses ------------------------------------------------------------------------
    def _status(self, http: HTTPStatus, code: int, message: str, as_json: bool, *,
                close: bool = False, headers: dict[str, str] | None = None) -> None:
        status = status_pb2.Status(code=code, message=message)
        if as_json:
            body = json_format.MessageToJson(status, indent=None).encode()
        else:
            body = status.SerializeToString()
        self._send(http, body, _JSON if as_json else _PROTOBUF, close=close, headers=headers)


GatewayHTTPServer.handler = _Handler


class HttpListener:
    def __init__(self, server: BoundedHTTPServer) -> None:
        self.server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="genai-audit-http",
                                        daemon=True)

    def start(self) -> HttpListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()


def start_http(core: GatewayCore, endpoint: str, *, max_message_bytes: int,
               tls_files: tuple[str, str] | None, reuse_port: bool,
               limits: HttpLimits | None = None) -> HttpListener:
    """Bind and serve in a thread; ``tls_files`` is (certificate path, key path)."""
    host, _, port = endpoint.rpartition(":")
    server = GatewayHTTPServer((host.strip("[]"), int(port)), core,
                               max_message_bytes=max_message_bytes, tls=server_tls(tls_files),
                               reuse_port=reuse_port, limits=limits)
    return HttpListener(server).start()


def server_tls(tls_files: tuple[str, str] | None) -> ssl.SSLContext | None:
    """A TLS 1.2+ server context from (certificate path, key path); None: plaintext."""
    if tls_files is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(*tls_files)
    return context
