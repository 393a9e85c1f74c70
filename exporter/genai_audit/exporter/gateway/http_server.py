"""OTLP/HTTP (``POST /v1/traces``, protobuf or JSON, gzip) plus health, readiness, metrics.

Status codes follow the OTLP/HTTP specification; error bodies are a ``google.rpc.Status``
in the request's encoding:

* 200 with ``partial_success`` when some spans were rejected;
* 400 malformed body, 401 missing/unknown bearer token, 404 other paths, 405 wrong method,
  411 no Content-Length, 413 body (or its gunzipped form) above the limit, 415 other types;
* 503 + ``Retry-After`` when neither the store nor the spool can take the batch (retryable:
  OTLP clients and the collector retry 429/502/503/504).

``GET /healthz``: the process is up. ``GET /readyz``: it can accept data (the store owner
answers and the spool has room). ``GET /metrics``: Prometheus text.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

_log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
_DISCARD_FACTOR = 4  # an oversized body up to this many times the limit is read and dropped


class GatewayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], core: GatewayCore, *,
                 max_message_bytes: int, tls: ssl.SSLContext | None, reuse_port: bool) -> None:
        self.core = core
        self.max_message_bytes = max_message_bytes
        self.reuse_port = reuse_port
        self.tls = tls
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
        if self.tls is not None:
            self.socket = self.tls.wrap_socket(self.socket, server_side=True,
                                               do_handshake_on_connect=False)


class _Handler(BaseHTTPRequestHandler):
    server: GatewayHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "genai-audit-gateway"
    sys_version = ""

    # -- OTLP -----------------------------------------------------------------------------
    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != TRACES_PATH:
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
            body = self._body(as_json)
            if body is None:
                return None
            try:
                outcome = core.export(principal, body, as_json=as_json)
            except MalformedRequest as exc:
                return self._status(HTTPStatus.BAD_REQUEST, code_pb2.INVALID_ARGUMENT, str(exc),
                                    as_json)
            except Unavailable as exc:
                return self._status(HTTPStatus.SERVICE_UNAVAILABLE, code_pb2.UNAVAILABLE,
                                    exc.reason, as_json,
                                    headers={"Retry-After": str(exc.retry_after)})
            payload = encode_response(outcome.rejected_count, outcome.message(),
                                      as_json=as_json)
            return self._send(HTTPStatus.OK, payload, _JSON if as_json else _PROTOBUF)
        finally:
            done()

    def _body(self, as_json: bool) -> bytes | None:
        limit = self.server.max_message_bytes
        metrics = self.server.core.metrics
        if self.headers.get("Transfer-Encoding"):
            self._status(HTTPStatus.LENGTH_REQUIRED, code_pb2.INVALID_ARGUMENT,
                         "chunked bodies are not accepted: send Content-Length", as_json,
                         close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._status(HTTPStatus.LENGTH_REQUIRED, code_pb2.INVALID_ARGUMENT,
                         "Content-Length required", as_json, close=True)
            return None
        if length < 0 or length > limit:
            metrics.reject("too_large")
            self._discard(min(length, _DISCARD_FACTOR * limit))  # so the client reads the 413
            self._status(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, code_pb2.INVALID_ARGUMENT,
                         f"body above the {limit}-byte limit", as_json, close=True)
            return None
        body = self.rfile.read(length)
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "identity":
            return body
        if encoding != "gzip":
            metrics.reject("unsupported_media_type")
            self._status(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, code_pb2.INVALID_ARGUMENT,
                         "Content-Encoding must be gzip or identity", as_json)
            return None
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            plain = inflater.decompress(body, limit + 1)
        except zlib.error:
            metrics.reject("malformed")
            self._status(HTTPStatus.BAD_REQUEST, code_pb2.INVALID_ARGUMENT,
                         "body is not valid gzip", as_json)
            return None
        if len(plain) > limit or inflater.unconsumed_tail:
            metrics.reject("too_large")
            self._status(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, code_pb2.INVALID_ARGUMENT,
                         f"gunzipped body above the {limit}-byte limit", as_json)
            return None
        return plain

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    # -- operations -----------------------------------------------------------------------
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
        if path == TRACES_PATH:
            return self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "POST only",
                               headers={"Allow": "POST"})
        return self._plain(HTTPStatus.NOT_FOUND, "not found")

    # -- responses ------------------------------------------------------------------------
    def _status(self, http: HTTPStatus, code: int, message: str, as_json: bool, *,
                close: bool = False, headers: dict[str, str] | None = None) -> None:
        status = status_pb2.Status(code=code, message=message)
        if as_json:
            body = json_format.MessageToJson(status, indent=None).encode()
        else:
            body = status.SerializeToString()
        self._send(http, body, _JSON if as_json else _PROTOBUF, close=close, headers=headers)

    def _plain(self, http: HTTPStatus, text: str, *, close: bool = False,
               headers: dict[str, str] | None = None) -> None:
        self._send(http, (text + "\n").encode(), "text/plain; charset=utf-8", close=close,
                   headers=headers)

    def _send(self, http: HTTPStatus, body: bytes, ctype: str, *, close: bool = False,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(http)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("http %s", json.dumps({"client": self.client_address[0],
                                          "line": format % args}))


class HttpListener:
    def __init__(self, server: GatewayHTTPServer) -> None:
        self.server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="genai-audit-http",
                                        daemon=True)

    def start(self) -> HttpListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_http(core: GatewayCore, endpoint: str, *, max_message_bytes: int,
               tls_files: tuple[str, str] | None, reuse_port: bool) -> HttpListener:
    """Bind and serve in a thread; ``tls_files`` is (certificate path, key path)."""
    host, _, port = endpoint.rpartition(":")
    context = None
    if tls_files is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*tls_files)
    server = GatewayHTTPServer((host.strip("[]"), int(port)), core,
                               max_message_bytes=max_message_bytes, tls=context,
                               reuse_port=reuse_port)
    return HttpListener(server).start()
