"""The owner's read interface: the ClickHouse HTTP interface, enough for its clients.

chDB allows one process per data directory, so while ``genai-audit serve`` owns an
embedded store no other process can open it. With ``gateway_read_endpoint`` set
(``serve --read-endpoint 127.0.0.1:8124``; off by default) the owner also answers reads
as a ClickHouse server would, so clickhouse-connect's HTTP client, and with it every
read command given ``--dsn http://auditor:TOKEN@127.0.0.1:8124``, works unmodified:

* ``POST /`` (query in the body, or ``query=`` plus the body) and ``GET /?query=``;
  ``param_<name>`` URL parameters bind ``{name:Type}`` placeholders; other URL parameters
  are settings, whitelisted (``read_service``); ``database=`` must be the store's.
* Credentials: ``read_auth`` (basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key``, or
  a bearer token); none or unknown: 401.
* The answer: the engine's bytes in the requested format, with ``X-ClickHouse-Format``,
  ``-Timezone``, ``-Query-Id`` and ``-Summary``; gzip or deflate when the client sets
  ``enable_http_compression=1`` and accepts one. Errors as ClickHouse sends them: status
  4xx/5xx, ``X-ClickHouse-Exception-Code`` and the body ``Code: N. DB::Exception: ...``.
* ``GET /ping`` and ``GET /``: ``Ok.``.

The listener is the OTLP listener's bounded server (``http_server``): connection slots,
idle, header and body deadlines, body size limit.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
import zlib
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from genai_audit.clickhouse.store import Store
from genai_audit.exporter.gateway.auth import AuthError
from genai_audit.exporter.gateway.http_body import Refused, read_body
from genai_audit.exporter.gateway.http_server import (
    BoundedHandler,
    BoundedHTTPServer,
    HttpLimits,
    HttpListener,
    server_tls,
)
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.read_auth import Reader, ReaderAuth
from genai_audit.exporter.gateway.read_service import ReadAnswer, ReadRefused, ReadService

_log = logging.getLogger(__name__)

_CONTENT_TYPES = {"TabSeparated": "text/tab-separated-values; charset=UTF-8",
                  "TSV": "text/tab-separated-values; charset=UTF-8",
                  "CSV": "text/csv; charset=UTF-8", "JSON": "application/json; charset=UTF-8",
                  "JSONCompact": "application/json; charset=UTF-8",
                  "JSONEachRow": "application/x-ndjson; charset=UTF-8"}
_QUERY_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_BINARY = frozenset({"Native", "RowBinary", "RowBinaryWithNames", "RowBinaryWithNamesAndTypes",
                     "Parquet", "Arrow", "ArrowStream"})


class ReadHTTPServer(BoundedHTTPServer):
    refused_metric = "read_connections_refused"

    def __init__(self, address: tuple[str, int], metrics: Metrics, service: ReadService,
                 auth: ReaderAuth, *, max_message_bytes: int, tls_files: tuple[str, str] | None,
                 limits: HttpLimits | None = None) -> None:
        self.service, self.auth = service, auth
        self.timezone = str(service.store.scalar("SELECT timezone()") or "UTC")
        super().__init__(address, metrics, max_message_bytes=max_message_bytes,
                         tls=server_tls(tls_files), reuse_port=False, limits=limits)


class _ReadHandler(BoundedHandler):
    server: ReadHTTPServer
    server_version = "genai-audit-read"

    def do_GET(self) -> None:
        path, params = self._target()
        if path == "/ping" or (path == "/" and "query" not in params):
            return self._plain(HTTPStatus.OK, "Ok.")
        if path != "/":
            return self._plain(HTTPStatus.NOT_FOUND, "not found", close=True)
        reader = self._authenticate()
        if reader is not None:
            self._read(reader, params, b"")

    def do_POST(self) -> None:
        path, params = self._target()
        if path != "/":
            return self._plain(HTTPStatus.NOT_FOUND, "not found", close=True)
        reader = self._authenticate()
        if reader is None:
            return
        self._reader.arm(self.server.limits.body_timeout_s)
        try:
            body = read_body(self.rfile, self.headers, self.server.max_message_bytes)
        except Refused as refused:
            return self._error(ReadRefused(refused.message, 1, int(refused.status)),
                               close=True)
        ctype = (self.headers.get("Content-Type") or "").lower()
        if ctype.startswith(("multipart/", "application/x-www-form-urlencoded")):
            return self._error(ReadRefused("form-encoded queries are not supported: send "
                                           "the query as the body", 1, 400))
        self._read(reader, params, body)

    def _other_method(self) -> None:
        self._plain(HTTPStatus.METHOD_NOT_ALLOWED, "GET or POST only", close=True,
                    headers={"Allow": "GET, POST"})

    do_HEAD = _other_method
    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method

    def _target(self) -> tuple[str, dict[str, str]]:
        url = urlsplit(self.path)
        return url.path, dict(parse_qsl(url.query, keep_blank_values=True))

    def _authenticate(self) -> Reader | None:
        """The reader, or None once a 401 is sent (the body, if any, is not read)."""
        try:
            return self.server.auth.authenticate(self.headers.get("X-ClickHouse-Key"),
                                                self.headers.get("Authorization"))
        except AuthError as exc:
            self._error(ReadRefused(f"{exc}", 516, 401), close=True,
                        headers={"WWW-Authenticate": 'Basic realm="genai-audit"'})
            return None

    def _read(self, reader: Reader, params: dict[str, str], body: bytes) -> None:
        server = self.server
        query_id = params.get("query_id", "")
        if not _QUERY_ID.match(query_id):  # echoed in a header: plain characters only
            query_id = str(uuid.uuid4())
        try:
            sql = _query_text(params.get("query", ""), body)
            database = params.get("database")
            if database and database != server.service.store.database:
                raise ReadRefused(f"database {database} is not served here (this store "
                                  f"serves {server.service.store.database})", 81, 404)
            parameters = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
            settings = {k: v for k, v in params.items() if not k.startswith("param_")}
            answer = server.service.run(reader, sql, parameters, settings,
                                        params.get("default_format"))
        except ReadRefused as refused:
            _log.info("read refused %s", json.dumps({"reader": reader.name,
                                                     "code": refused.code}))
            return self._error(refused, query_id=query_id)
        _log.debug("read %s", json.dumps({"reader": reader.name, "format": answer.fmt,
                                          "bytes": len(answer.body)}))
        self._answer(answer, query_id, params.get("enable_http_compression") == "1")

    def _answer(self, answer: ReadAnswer, query_id: str, compress: bool) -> None:
        body, headers = answer.body, {"X-ClickHouse-Format": answer.fmt,
                                      "X-ClickHouse-Timezone": self.server.timezone,
                                      "X-ClickHouse-Query-Id": query_id,
                                      "X-ClickHouse-Summary": json.dumps(dict(answer.summary))}
        encoding = _encoding(self.headers.get("Accept-Encoding", "")) if compress else None
        if encoding == "gzip":
            packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body = packer.compress(body) + packer.flush()
        elif encoding == "deflate":
            body = zlib.compress(body)
        if encoding:
            headers["Content-Encoding"] = encoding
        ctype = _CONTENT_TYPES.get(answer.fmt, "application/octet-stream" if answer.fmt
                                   in _BINARY else "text/plain; charset=UTF-8")
        self._send(HTTPStatus.OK, body, ctype, headers=headers)

    def _error(self, refused: ReadRefused, *, close: bool = False, query_id: str = "",
               headers: dict[str, str] | None = None) -> None:
        text = str(refused)
        if not text.startswith("Code: "):
            text = f"Code: {refused.code}. DB::Exception: {text}. (genai-audit read interface)"
        extra = {"X-ClickHouse-Exception-Code": str(refused.code), **(headers or {})}
        if query_id:
            extra["X-ClickHouse-Query-Id"] = query_id
        self._send(HTTPStatus(refused.status), (text + "\n").encode(),
                   "text/plain; charset=UTF-8", close=close, headers=extra)


ReadHTTPServer.handler = _ReadHandler


def _query_text(param: str, body: bytes) -> str:
    """ClickHouse's rule: the ``query`` parameter, then the body (joined by a newline)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ReadRefused("the query is not UTF-8", 1, 400) from None
    return "\n".join(part for part in (param, text) if part)


def _encoding(accept: str) -> str | None:
    for item in accept.split(","):
        name = item.split(";", 1)[0].strip().lower()
        if name in ("gzip", "deflate"):
            return name
    return None


def start_read_http(metrics: Metrics, store: Store, auth: ReaderAuth, endpoint: str, *,
                    max_message_bytes: int, tls_files: tuple[str, str] | None,
                    limits: HttpLimits | None = None) -> HttpListener:
    """Bind the read interface on ``store`` (the owner's) and serve it in a thread."""
    host, _, port = endpoint.rpartition(":")
    server = ReadHTTPServer((host.strip("[]"), int(port)), metrics, ReadService(store), auth,
                            max_message_bytes=max_message_bytes, tls_files=tls_files,
                            limits=limits)
    return HttpListener(server).start()
