"""Acceptance: `serve` owns an embedded store and ingests; other processes read it live
through the owner's read interface (the ClickHouse HTTP interface) with the CLI and with
clickhouse-connect's plain HTTP client."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import zlib
from base64 import b64encode
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from gateway_harness import CLI, TOKENS, Gateway, free_port
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from genai_audit.exporter.gateway.auth import hash_token
from genai_audit.instrumentation.context import audit_context, stamp_baggage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READERS = {"auditor": "read-all-0123456789", "acme-auditor": "read-acme-0123456789",
           "admin": "read-admin-0123456789"}
GENAI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
         "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3,
         "gen_ai.usage.output_tokens": 4,
         "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'}


class BaggageStamp(SpanProcessor):
    """What the genai-audit distro does on span start: baggage -> span attributes."""

    def on_start(self, span, parent_context=None) -> None:  # type: ignore[no-untyped-def]
        stamp_baggage(span, parent_context)


def _readers_file(tmp_path: Path) -> Path:
    path = tmp_path / "readers.toml"
    path.write_text(
        f'[[reader]]\nname = "all"\nrole = "auditor"\nsha256 = "{hash_token(READERS["auditor"])}"\n'
        f'[[reader]]\nname = "acme"\nrole = "auditor"\ntenant = "acme"\n'
        f'sha256 = "{hash_token(READERS["acme-auditor"])}"\n'
        f'[[reader]]\nname = "ops"\nrole = "admin"\nsha256 = "{hash_token(READERS["admin"])}"\n')
    return path


def _ingest(gw: Gateway, tenant: str, tools: list[str]) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(BaggageStamp())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=gw.http + "/v1/traces", headers={"authorization": f"Bearer {TOKENS[tenant]}"})))
    tracer = provider.get_tracer("app")
    for tool in tools:
        with audit_context(tenant_id=tenant, user_id="alice", tool_name=tool):
            with tracer.start_as_current_span("chat gpt-4o", attributes=GENAI):
                pass
    provider.shutdown()


def _cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENAI_AUDIT_CONFIG": "", **extra}
    env.pop("GENAI_AUDIT_DSN", None)
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def owner(tmp_path, tokens_file, gateways):
    read_port = free_port()
    store = tmp_path / "store"
    gw = Gateway(tmp_path, f"chdb://{store}", tokens_file=tokens_file,
                 extra=["--read-endpoint", f"127.0.0.1:{read_port}",
                        "--readers-file", str(_readers_file(tmp_path))]).start()
    gateways.append(gw)
    _ingest(gw, "acme", ["t1", "t2"])
    _ingest(gw, "globex", ["t3"])
    return gw, read_port, store


def _http(port: int, token: str, sql: str, **params: str) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{port}/?" + urllib.parse.urlencode({"query": sql, **params})
    request = urllib.request.Request(url, headers={"X-ClickHouse-Key": token})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _dsn(port: int, who: str = "auditor") -> str:
    return f"http://{who}:{READERS[who]}@127.0.0.1:{port}"


def test_cli_and_clickhouse_connect_read_the_owned_store_live(owner):
    gw, port, store = owner
    # the store is owned: opening it directly fails, and says how to reach the owner
    direct = _cli("query", "--dsn", f"chdb://{store}", "SELECT 1")
    assert direct.returncode == 2
    assert f"--dsn http://auditor:TOKEN@127.0.0.1:{port}" in direct.stderr
    done = _cli("query", "--dsn", _dsn(port), "--format", "json",
                "SELECT count() AS n FROM interactions")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 3}]
    report = _cli("report", "--dsn", _dsn(port), "--format", "json")
    assert report.returncode in (0, 1), report.stderr
    assert json.loads(report.stdout)["provenance"]
    # verify recomputes the ledger from the rows it reads (ciphertext included) and checks
    # it with the keystore's public key, here the owner's keystore beside the store
    verify = _cli("verify", "--dsn", _dsn(port), GENAI_AUDIT_KEYSTORE_DIR=f"{store}-keys")
    assert verify.returncode == 0, verify.stderr
    assert "interactions                 3 records" in verify.stdout
    # the gateway keeps ingesting while readers read
    _ingest(gw, "acme", ["t4"])
    assert (store / "genai-audit-read-endpoint").read_text().strip() == f"127.0.0.1:{port}"
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="auditor",
                                           password=READERS["auditor"],
                                           database="genai_audit")
    rows = client.query("SELECT tool_name FROM interactions WHERE tenant_id = {t:String} "
                        "ORDER BY tool_name", parameters={"t": "acme"}).result_rows
    assert rows == [("t1",), ("t2",), ("t4",)]
    assert client.command("SELECT count() FROM llm_interaction_audit") == 4
    compressed = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="x",
                                               password=READERS["admin"], compress="gzip")
    assert compressed.query("SELECT count() FROM genai_audit.interactions").result_rows == [(4,)]
    assert gw.stop() == 0
    assert not (store / "genai-audit-read-endpoint").exists()  # a clean stop forgets it


def test_tenant_scoped_reader_sees_only_its_tenant(owner):
    _, port, _ = owner
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="acme-auditor",
                                           password=READERS["acme-auditor"],
                                           database="genai_audit")
    assert client.query("SELECT DISTINCT tenant_id FROM interactions").result_rows == [("acme",)]
    assert client.command("SELECT count() FROM llm_interaction_audit") == 2
    assert client.command("SELECT count() FROM (SELECT id FROM interactions UNION ALL "
                          "SELECT id FROM genai_audit.interactions)") == 4
    assert client.command("SELECT countIf(tenant_id = 'globex') FROM audit_daily_activity") == 0
    # the client's own settings cannot lift the filter (sent as URL parameters, past the
    # client's own check of system.settings)
    token = READERS["acme-auditor"]
    sql = "SELECT DISTINCT tenant_id FROM interactions ORDER BY tenant_id"
    assert _http(port, token, sql, readonly="0") == (200, b"acme\n")
    assert _http(port, token, sql, readonly="2") == (200, b"acme\n")
    for name, value in (("additional_table_filters", "{}"),
                        ("additional_table_filters", "{'genai_audit.interactions': '1'}"),
                        ("additional_result_filter", "1"), ("allow_ddl", "1")):
        status, body = _http(port, token, sql, **{name: value})
        assert status == 400 and b"is not offered" in body, body
    with pytest.raises(DatabaseError, match="SETTINGS is not allowed"):
        client.query("SELECT tenant_id FROM interactions SETTINGS additional_table_filters = "
                     "{'genai_audit.interactions': '1'}")
    done = _cli("query", "--dsn", _dsn(port, "acme-auditor"), "--format", "json",
                "SELECT tenant_id, count() AS n FROM interactions GROUP BY tenant_id")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"tenant_id": "acme", "n": 2}]


@pytest.mark.parametrize("sql, reason", [
    ("INSERT INTO interactions (id) VALUES ('x')", "only SELECT"),
    ("DROP TABLE interactions", "only SELECT"),
    ("CREATE TABLE x (a Int8) ENGINE = Memory", "only SELECT"),
    ("ALTER TABLE interactions DELETE WHERE 1", "only SELECT"),
    ("SELECT 1; DROP TABLE interactions", "Multi-statements"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table functions"),
    ("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", "table functions"),
    ("SELECT file('/etc/passwd')", "table functions"),
    ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
    ("SET readonly = 0", "only SELECT"),
    ("EXPLAIN PIPELINE SELECT 1", "only EXPLAIN AST"),
])
def test_writes_ddl_multi_statements_and_table_functions_are_refused(owner, sql, reason):
    _, port, _ = owner
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, username="admin",
                                           password=READERS["admin"])
    with pytest.raises(DatabaseError, match=reason) as caught:
        client.command(sql)
    assert "Code: 164" in str(caught.value)
    assert client.command("SELECT count() FROM genai_audit.interactions") == 3  # nothing lost


def test_unauthenticated_and_unknown_readers_are_refused(owner):
    _, port, _ = owner
    url = f"http://127.0.0.1:{port}/?query=SELECT%201"
    for headers in ({}, {"Authorization": "Basic " + b64encode(b"auditor:wrong").decode()},
                    {"X-ClickHouse-User": "auditor", "X-ClickHouse-Key": "nope"},
                    {"Authorization": f"Bearer {TOKENS['acme']}"}):  # a writer's token
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
        assert caught.value.code == 401
        assert caught.value.headers["X-ClickHouse-Exception-Code"] == "516"
    ok = urllib.request.Request(url, headers={"X-ClickHouse-User": "a",
                                              "X-ClickHouse-Key": READERS["auditor"]})
    with urllib.request.urlopen(ok, timeout=10) as response:
        assert response.read() == b"1\n"
        assert response.headers["X-ClickHouse-Format"] == "TabSeparated"


def test_formats_and_errors_as_clickhouse_sends_them(owner, tmp_path):
    _, port, _ = owner
    token = READERS["auditor"]
    status, body = _http(port, token, "SELECT tenant_id, count() AS n FROM interactions "
                                      "GROUP BY tenant_id ORDER BY tenant_id FORMAT JSONEachRow")
    assert status == 200
    assert [json.loads(line) for line in body.splitlines()] == [
        {"tenant_id": "acme", "n": 2}, {"tenant_id": "globex", "n": 1}]
    assert _http(port, token, "SELECT 1", default_format="CSV") == (200, b"1\n")
    status, body = _http(port, token, "SELECT 1 FORMAT XML")
    assert status == 403 and b"FORMAT XML is not offered" in body
    target = tmp_path / "out.csv"
    status, body = _http(port, token, f"SELECT 1 INTO OUTFILE '{target}' FORMAT CSV")
    assert status == 403 and b"INTO OUTFILE is not allowed" in body and not target.exists()
    status, body = _http(port, token, "SELECT {n:UInt8} + 1 FORMAT TSV", param_n="41")
    assert (status, body) == (200, b"42\n")
    for encoding, unpack in (("gzip", gzip.decompress), ("deflate", zlib.decompress)):
        url = f"http://127.0.0.1:{port}/?" + urllib.parse.urlencode(
            {"query": "SELECT 42", "enable_http_compression": "1"})
        request = urllib.request.Request(url, headers={"X-ClickHouse-Key": token,
                                                       "Accept-Encoding": f"br, {encoding}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Encoding"] == encoding
            assert unpack(response.read()) == b"42\n"
    url = f"http://127.0.0.1:{port}/?" + urllib.parse.urlencode(
        {"query": "SELECT 1", "query_id": "q\r\nX-Injected: 1"})
    with urllib.request.urlopen(urllib.request.Request(
            url, headers={"X-ClickHouse-Key": token}), timeout=30) as response:
        assert response.headers["X-Injected"] is None
        assert len(response.headers["X-ClickHouse-Query-Id"]) == 36  # one of ours
        summary = json.loads(response.headers["X-ClickHouse-Summary"])
        assert summary["read_rows"] == "1" and summary["written_rows"] == "0"
    status, body = _http(port, token, "SELECT no_such_column FROM interactions")
    assert status == 500 and body.startswith(b"Code: 47. DB::Exception:")
    # bounded as the OTLP listener: a query body above --max-message-mb (16) is refused
    big = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b" " * (17 << 20),
                                 headers={"X-ClickHouse-Key": token,
                                          "Content-Type": "text/plain"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(big, timeout=60)
    assert caught.value.code == 413
    form = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"query=SELECT+1",
                                  headers={"X-ClickHouse-Key": token}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(form, timeout=60)  # urllib's default: form-encoded
    assert caught.value.code == 400 and b"form-encoded" in caught.value.read()
    status, body = _http(port, token, "SELECT 1", database="other")
    assert status == 404 and b"database other is not served here" in body
