"""``genai-audit serve``: the OTLP gateway (gRPC 4317, HTTP 4318) that owns the store."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from genai_audit.cli.common import CommandError, store_options
from genai_audit.config import Settings, SettingsError
from genai_audit.exporter.gateway.auth import hash_token
from genai_audit.exporter.gateway.runtime import GatewayError, run


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (never exception texts)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                                 "level": record.levelname, "logger": record.name,
                                 "msg": record.getMessage()}
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


_GATEWAY_FLAGS = {
    "grpc": "gateway_grpc_endpoint", "http": "gateway_http_endpoint",
    "workers": "gateway_workers", "tokens_file": "gateway_tokens_file",
    "allow_unauthenticated": "gateway_allow_unauthenticated",
    "tls_cert": "gateway_tls_cert", "tls_key": "gateway_tls_key",
    "tenant_mismatch": "gateway_tenant_mismatch",
    "max_message_mb": "gateway_max_message_mb", "max_attribute_kb": "gateway_max_attribute_kb",
    "spool_dir": "spool_dir", "spool_max_mb": "spool_max_mb",
    "read_endpoint": "gateway_read_endpoint", "readers_file": "gateway_readers_file",
}


@click.command("serve")
@click.option("--grpc", help="OTLP/gRPC listen address host:port, or off "
              "[env GENAI_AUDIT_GATEWAY_GRPC_ENDPOINT; default 127.0.0.1:4317].")
@click.option("--http", help="OTLP/HTTP listen address host:port, or off "
              "[env GENAI_AUDIT_GATEWAY_HTTP_ENDPOINT; default 127.0.0.1:4318].")
@click.option("--workers", type=int, help="Worker processes sharing the listeners "
              "[default 1].")
@click.option("--tokens-file", type=click.Path(dir_okay=False),
              help="TOML file of per-tenant bearer token hashes (see docs/deploy.md).")
@click.option("--allow-unauthenticated", is_flag=True, default=None,
              help="Accept requests without a token (local development only).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="TLS certificate (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option("--tenant-mismatch", type=click.Choice(["reject", "reattribute"]),
              help="A span claiming another tenant than its token's: reject it (default) "
              "or store it under the token's tenant, flagged.")
@click.option("--max-message-mb", type=int, help="Largest request body [default 16].")
@click.option("--max-attribute-kb", type=int,
              help="Longer attributes are truncated and flagged [default 1024].")
@click.option("--spool-dir", type=click.Path(file_okay=False),
              help="On-disk spool for when the store is down [default <store>-spool].")
@click.option("--spool-max-mb", type=int, help="Spool bound; when full the gateway answers "
              "503/UNAVAILABLE [default 1024].")
@click.option("--read-endpoint", help="Serve reads of the store this process owns (the "
              "ClickHouse HTTP interface: `--dsn http://auditor:TOKEN@HOST:PORT` for read "
              "commands) on host:port, or off [env GENAI_AUDIT_GATEWAY_READ_ENDPOINT; default "
              "off; e.g. 127.0.0.1:8124].")
@click.option("--readers-file", type=click.Path(dir_okay=False),
              help="TOML file of reader token hashes -> role (auditor, admin) and optional "
                   "tenant (see docs/deploy.md); required with --read-endpoint.")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json",
              show_default=True, help="Log line format (stderr).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.option("--hash-token", is_flag=True,
              help="Read a token on stdin, print its sha256 for the tokens file, and exit.")
@store_options
def command(settings: Settings, log_format: str, log_level: str, hash_token: bool,
            **flags: Any) -> None:
    """Run the OTLP gateway: spans from any language -> the audit pipeline -> the store.

    Receives OTLP/gRPC (TraceService/Export) and OTLP/HTTP (POST /v1/traces, protobuf
    or JSON, gzip), authenticates each sender by its bearer token (the token decides the
    tenant), runs the same pipeline as the in-process exporter and writes to the store
    this process owns. A request is acknowledged only when its records are in the store
    or in the fsync'd on-disk spool; the spool drains when the store is back. Also
    serves GET /healthz, /readyz and /metrics (Prometheus) on the HTTP port.

    With --read-endpoint, the process that owns an embedded store also serves reads
    of it (chDB lets no other process open it): one read-only statement per request,
    authenticated by the readers file, tenant-scoped readers limited to their tenant.

    \b
    Examples:
      genai-audit serve --allow-unauthenticated            # local development
      genai-audit serve --tokens-file tokens.toml --grpc 0.0.0.0:4317 --http 0.0.0.0:4318 \\
          --tls-cert gw.crt --tls-key gw.key --workers 4 --dsn https://writer:***@ch:8443
      echo -n "$TOKEN" | genai-audit serve --hash-token    # line for tokens.toml
      genai-audit serve --tokens-file tokens.toml --read-endpoint 127.0.0.1:8124 \
          --readers-file readers.toml    # then: genai-audit query --dsn http://auditor:T@...

    See docs/deploy.md for the collector -> gateway -> ClickHouse deployment.
    """
    if hash_token:
        click.echo(hash_token_line(sys.stdin.read()))
        return
    try:
        settings = settings.with_overrides({_GATEWAY_FLAGS[k]: v for k, v in flags.items()})
    except SettingsError as exc:
        raise CommandError(str(exc)) from exc
    configure_logging(log_format, log_level)
    try:
        run(settings)
    except GatewayError as exc:
        raise CommandError(str(exc)) from exc


def hash_token_line(token: str) -> str:
    if not token.strip():
        raise CommandError("no token on stdin")
    return f'sha256 = "{hash_token(token)}"'
