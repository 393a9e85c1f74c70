"""Acceptance: official OTLP exporters (Python gRPC + HTTP, Node.js gRPC) -> gateway -> store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from gateway_harness import TOKENS, Gateway, query
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from genai_audit.instrumentation.context import audit_context, stamp_baggage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
GENAI = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
         "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3,
         "gen_ai.usage.output_tokens": 4,
         "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'}


class BaggageStamp(SpanProcessor):
    """What the genai-audit distro does on span start: baggage -> span attributes."""

    def on_start(self, span, parent_context=None) -> None:  # type: ignore[no-untyped-def]
        stamp_baggage(span, parent_context)


def _provider(exporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "py-svc"}))
    provider.add_span_processor(BaggageStamp())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_python_grpc_and_http_exporters_with_baggage_tenancy(tmp_path, tokens_file, gateways):
    dsn = f"chdb://{tmp_path / 'store'}"
    gw = Gateway(tmp_path, dsn, tokens_file=tokens_file).start()
    gateways.append(gw)
    auth = {"authorization": f"Bearer {TOKENS['acme']}"}
    grpc_provider = _provider(GrpcExporter(endpoint=gw.grpc, insecure=True, headers=auth))
    http_provider = _provider(HttpExporter(endpoint=gw.http + "/v1/traces", headers=auth))
    for provider, tool in ((grpc_provider, "via_grpc"), (http_provider, "via_http")):
        tracer = provider.get_tracer("app")
        with audit_context(tenant_id="acme", user_id="alice", tool_name=tool):
            with tracer.start_as_current_span("chat gpt-4o", attributes=GENAI):
                pass
        # a span whose baggage claims another tenant than its token: rejected, not stored
        with audit_context(tenant_id="globex", user_id="mallory", tool_name=tool + "_spoof"):
            with tracer.start_as_current_span("chat gpt-4o", attributes=GENAI):
                pass
        provider.shutdown()
    metrics = gw.metrics()
    assert metrics['rejected_spans_total{reason="tenant_mismatch"}'] == 2
    assert gw.stop() == 0
    rows = query(dsn, "SELECT tenant_id, tool_name, service_name, gdpr_pseudonymized_user_key "
                      "AS user_key FROM interactions ORDER BY tool_name")
    assert [(r["tenant_id"], r["tool_name"], r["service_name"]) for r in rows] == [
        ("acme", "via_grpc", "py-svc"), ("acme", "via_http", "py-svc")]
    assert all(r["user_key"] and r["user_key"] != "alice" for r in rows)


def test_auth_failures(tmp_path, tokens_file, gateways, make_span):
    gw = Gateway(tmp_path, f"chdb://{tmp_path / 'store'}", tokens_file=tokens_file).start()
    gateways.append(gw)
    body = encode_spans([make_span()]).SerializeToString()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        request = urllib.request.Request(gw.http + "/v1/traces", data=body, headers={
            "Content-Type": "application/x-protobuf", **headers})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 401
        assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    with grpc.insecure_channel(gw.grpc) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        request_pb = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as rpc:
                stub.Export(request_pb, metadata=metadata, timeout=10)
            assert rpc.value.code() is grpc.StatusCode.UNAUTHENTICATED
        ok = stub.Export(request_pb, metadata=(("authorization", f"Bearer {TOKENS['acme']}"),),
                         timeout=10)
        assert ok.partial_success.rejected_spans == 0
    assert gw.metrics()['rejected_spans_total{reason="unauthenticated"}'] == 5
    assert gw.stop() == 0
    assert query(gw.dsn, "SELECT count() AS n FROM interactions") == [{"n": 1}]


def _node_ready() -> str | None:
    """None when the Node client can run; else why not (the skip reason)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed: the Node.js acceptance test needs node >= 18"
    modules = NODE_DIR / "node_modules" / "@opentelemetry"
    if not all((modules / name).is_dir() for name in ("exporter-trace-otlp-grpc",
                                                       "exporter-trace-otlp-http")):
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return f"npm ci failed in {NODE_DIR}: {done.stderr[-300:]}"
    return None


def test_node_otlp_grpc_exporter_with_baggage(tmp_path, tokens_file, gateways):
    reason = _node_ready()
    if reason:
        pytest.skip(reason)
    dsn = f"chdb://{tmp_path / 'store'}"
    gw = Gateway(tmp_path, dsn, tokens_file=tokens_file).start()
    gateways.append(gw)
    env = {**os.environ, "GATEWAY_GRPC": gw.grpc, "GATEWAY_TOKEN": TOKENS["globex"]}
    done = subprocess.run(["node", str(NODE_DIR / "send_spans.js")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exported"] == "success"
    assert gw.stop() == 0
    rows = query(dsn, "SELECT tenant_id, tool_name, service_name, model, prompt_tokens, "
                      "flags FROM interactions ORDER BY tool_name")
    assert [(r["tenant_id"], r["tool_name"], r["service_name"]) for r in rows] == [
        ("globex", "node_support_bot", "node-svc"), ("globex", "node_unattributed", "node-svc")]
    assert rows[0]["model"] == "gpt-4o-mini" and rows[0]["prompt_tokens"] == 12
    assert "unattributed" not in rows[1]["flags"]  # its token attributes it


def test_node_otlp_http_exporter_sends_chunked_bodies_and_they_land(tmp_path, tokens_file,
                                                                    gateways):
    """The OTel JS OTLP/HTTP exporter streams its body (Transfer-Encoding: chunked); the
    gateway answered 411 and the exporter dropped every span."""
    reason = _node_ready()
    if reason:
        pytest.skip(reason)
    dsn = f"chdb://{tmp_path / 'store'}"
    gw = Gateway(tmp_path, dsn, tokens_file=tokens_file).start()
    gateways.append(gw)
    for compression in ("none", "gzip"):
        env = {**os.environ, "GATEWAY_HTTP": f"127.0.0.1:{gw.http_port}",
               "GATEWAY_TOKEN": TOKENS["globex"], "GATEWAY_COMPRESSION": compression,
               "GATEWAY_TOOL_PREFIX": f"http_{compression}"}
        done = subprocess.run(["node", str(NODE_DIR / "send_spans.js")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["exported"] == "success", report
        assert report["chunked"] and all(report["chunked"]), report  # really chunked
    assert gw.stop() == 0
    rows = query(dsn, "SELECT tenant_id, tool_name, model, prompt_tokens FROM interactions "
                      "ORDER BY tool_name")
    assert [(r["tenant_id"], r["tool_name"]) for r in rows] == [
        ("globex", "http_gzip_support_bot"), ("globex", "http_gzip_unattributed"),
        ("globex", "http_none_support_bot"), ("globex", "http_none_unattributed")]
    assert all(r["model"] == "gpt-4o-mini" and r["prompt_tokens"] == 12 for r in rows)


def _tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: (ca, cert, key) PEM paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, issuer_key, public_key, ca: bool):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("localhost")]), critical=False).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = build("genai-audit test CA", None, ca_key, ca_key.public_key(), True)
    cert = build("127.0.0.1", ca.subject, ca_key, key.public_key(), False)
    paths = tmp_path / "ca.pem", tmp_path / "gw.crt", tmp_path / "gw.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_tls_on_both_listeners(tmp_path, tokens_file, gateways, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # would override certificate_file
        monkeypatch.delenv(name, raising=False)
    ca, cert, key = _tls_files(tmp_path)
    dsn = f"chdb://{tmp_path / 'store'}"
    gw = Gateway(tmp_path, dsn, tokens_file=tokens_file,
                 extra=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    gateways.append(gw)
    auth = {"authorization": f"Bearer {TOKENS['acme']}"}
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    for exporter, tool in (
            (GrpcExporter(endpoint=gw.grpc, credentials=credentials, headers=auth), "tls_grpc"),
            (HttpExporter(endpoint=f"https://127.0.0.1:{gw.http_port}/v1/traces",
                          certificate_file=str(ca), headers=auth), "tls_http")):
        provider = _provider(exporter)
        with audit_context(tenant_id="acme", tool_name=tool):
            with provider.get_tracer("app").start_as_current_span("chat", attributes=GENAI):
                pass
        provider.shutdown()
    with pytest.raises(OSError):  # plaintext HTTP to the TLS listener gets no OTLP answer
        urllib.request.urlopen(gw.http + "/healthz", timeout=5)
    assert gw.stop() == 0
    rows = query(dsn, "SELECT tool_name FROM interactions ORDER BY tool_name")
    assert [r["tool_name"] for r in rows] == ["tls_grpc", "tls_http"]
