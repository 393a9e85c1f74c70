"""OTLP/gRPC: the TraceService, LogsService and MetricsService ``Export`` methods, and health.

Logs carry GenAI events (held for their span's record, ``GatewayCore.export_logs``);
metrics are counted and dropped (``GatewayCore.export_metrics``).

The request is taken as raw bytes (not parsed by grpcio) so that decoding, and its
errors, are ``GatewayCore``'s: a malformed body is INVALID_ARGUMENT with a reason, never an
opaque INTERNAL. Status codes follow the OTLP specification:

* UNAUTHENTICATED: missing or unknown bearer token (not retryable);
* INVALID_ARGUMENT: not an OTLP trace request (not retryable);
* UNAVAILABLE + ``google.rpc.RetryInfo``: neither store nor spool can take the batch now;
  retryable, so the collector's persistent queue keeps it;
* OK with ``partial_success``: some spans rejected (tenant mismatch, invalid ids...).
* RESOURCE_EXHAUSTED: message above the size limit, counted as ``too_large`` like HTTP's
  413. grpcio's own receive cap sits at ``_HARD_CAP_FACTOR`` times the limit (the bound
  on what is read only to be refused, as HTTP's discard bound); beyond it grpcio refuses
  the message before any handler runs, uncounted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from genai_audit.exporter.gateway.auth import Principal
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

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
SERVICES = (SERVICE, LOGS_SERVICE, METRICS_SERVICE)
_HARD_CAP_FACTOR = 4


@dataclass(frozen=True)
class _RichStatus(grpc.Status):  # type: ignore[misc]
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


def _unavailable(exc: Unavailable) -> _RichStatus:
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
        seconds=exc.retry_after))
    detail = any_pb2.Any()
    detail.Pack(retry)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=exc.reason,
                               details=[detail])
    return _RichStatus(grpc.StatusCode.UNAVAILABLE, exc.reason, (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", retry.SerializeToString()),
    ))


class ExportHandler:
    """``Export`` of one OTLP service (``service``: one of ``SERVICES``)."""

    def __init__(self, core: GatewayCore, max_message_bytes: int,
                 service: str = SERVICE) -> None:
        self.core = core
        self.max_message_bytes = max_message_bytes
        self.service = service

    def _answer(self, principal: Principal, request: bytes) -> bytes:
        if self.service == LOGS_SERVICE:
            outcome = self.core.export_logs(principal, request, as_json=False)
            return encode_logs_response(outcome.rejected_count, outcome.message(),
                                        as_json=False)
        if self.service == METRICS_SERVICE:
            self.core.export_metrics(principal, request, as_json=False)
            return encode_metrics_response(as_json=False)
        outcome = self.core.export(principal, request, as_json=False)
        return encode_response(outcome.rejected_count, outcome.message(), as_json=False)

    def export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        done = timed(self.core.metrics)
        try:
            if len(request) > self.max_message_bytes:
                self.core.metrics.reject("too_large")
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"message of {len(request)} bytes is above the limit of "
                              f"{self.max_message_bytes} bytes; send smaller batches")
            metadata = {k.lower(): v for k, v in context.invocation_metadata()}
            authorization = metadata.get("authorization")
            principal = self.core.authenticate(
                authorization if isinstance(authorization, str) else None)
            return self._answer(principal, request)
        except AuthError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except MalformedRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Unavailable as exc:
            context.abort_with_status(_unavailable(exc))
        finally:
            done()
        raise AssertionError("abort returned")  # pragma: no cover

    def generic_handler(self) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(
            self.export, request_deserializer=None, response_serializer=None)
        return grpc.method_handlers_generic_handler(self.service, {"Export": method})


@dataclass
class GrpcListener:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    stopping: threading.Event = field(default_factory=threading.Event)

    def track_readiness(self, ready: Callable[[], bool], interval_s: float = 2.0) -> None:
        """Keep gRPC health in step with readiness (NOT_SERVING while the spool is full)."""
        def loop() -> None:
            while not self.stopping.wait(interval_s):
                try:
                    state = ready()
                except Exception:
                    state = False
                serving = (health_pb2.HealthCheckResponse.SERVING if state
                           else health_pb2.HealthCheckResponse.NOT_SERVING)
                for name in ("", *SERVICES):
                    self.health.set(name, serving)

        threading.Thread(target=loop, name="genai-audit-health", daemon=True).start()

    def stop(self, grace_s: float) -> None:
        self.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()


def start_grpc(core: GatewayCore, endpoint: str, *, max_message_bytes: int,
               tls: tuple[bytes, bytes] | None, reuse_port: bool, threads: int = 16
               ) -> GrpcListener:
    """Bind and start; ``tls`` is (key PEM, certificate chain PEM)."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", _HARD_CAP_FACTOR * max_message_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    server = grpc.server(ThreadPoolExecutor(max_workers=threads,
                                            thread_name_prefix="genai-audit-grpc"),
                         options=options)
    server.add_generic_rpc_handlers(tuple(
        ExportHandler(core, max_message_bytes, service).generic_handler()
        for service in SERVICES))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if tls is not None:
        port = server.add_secure_port(endpoint, grpc.ssl_server_credentials([tls]))
    else:
        port = server.add_insecure_port(endpoint)
    if not port:
        raise OSError(f"cannot listen for OTLP/gRPC on {endpoint}")
    server.start()
    for name in ("", *SERVICES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    listener = GrpcListener(server, port, health_servicer)
    listener.track_readiness(core.ready)
    return listener
