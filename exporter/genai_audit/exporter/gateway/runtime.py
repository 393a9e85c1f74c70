"""Running the gateway: the store owner, its worker processes, listeners, shutdown.

Process model (``gateway_workers`` = N):

* N = 1: one process owns the store and serves both listeners; records go straight to
  ``LocalSink`` (store, else spool).
* N > 1: the parent process is the store owner only (store, spool, drain, the one final
  write: one writer per store, as chDB and the ledger require). It spawns N worker
  processes that each bind the same gRPC and HTTP ports with ``SO_REUSEPORT`` (the kernel
  spreads connections), decode and run the CPU-bound pipeline, and hand finished records
  to the owner over an authenticated Unix socket (``RemoteSink``), acknowledging the
  sender only after the owner answered "stored" or "spooled".

SIGTERM / SIGINT: stop accepting, let in-flight requests finish (grace period), stop the
workers, drain what the store takes, close the store.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai_audit.clickhouse.dsn import embedded_path, redact_dsn, resolve_dsn
from genai_audit.clickhouse.errors import ConfigError, StoreError, StoreUnavailable
from genai_audit.clickhouse.store import READ_ENDPOINT_FILE
from genai_audit.config import Settings
from genai_audit.exporter.gateway.auth import Authenticator
from genai_audit.exporter.gateway.core import GatewayCore
from genai_audit.exporter.gateway.grpc_server import GrpcListener, start_grpc
from genai_audit.exporter.gateway.http_server import HttpListener, start_http
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.read_auth import ReaderAuth
from genai_audit.exporter.gateway.read_server import start_read_http
from genai_audit.exporter.gateway.sink import LocalSink, OwnerServer, RemoteSink, Sink
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.processor.compose import compose

_log = logging.getLogger("genai_audit.gateway")

GRACE_S = 5.0
_WORKER_START_TIMEOUT_S = 60.0


class GatewayError(RuntimeError):
    """The gateway cannot start (usage or environment problem; exit 2)."""


@dataclass
class Listeners:
    grpc: GrpcListener | None = None
    http: HttpListener | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.grpc is not None:
            self.grpc.stop(GRACE_S)


def check_settings(settings: Settings) -> Authenticator:
    """Validate what can be validated before opening anything."""
    if not settings.gateway_grpc_endpoint and not settings.gateway_http_endpoint:
        raise GatewayError("both listeners are off: set gateway_grpc_endpoint or "
                           "gateway_http_endpoint")
    if bool(settings.gateway_tls_cert) != bool(settings.gateway_tls_key):
        raise GatewayError("TLS needs both gateway_tls_cert and gateway_tls_key")
    for path in (settings.gateway_tls_cert, settings.gateway_tls_key):
        if path and not Path(path).is_file():
            raise GatewayError(f"TLS file {path} does not exist")
    try:
        return Authenticator.from_settings(settings.gateway_tokens_file,
                                           settings.gateway_allow_unauthenticated)
    except ValueError as exc:
        raise GatewayError(str(exc)) from exc


def check_read_settings(settings: Settings) -> ReaderAuth | None:
    """The readers of the owner's read interface (None: the interface is off)."""
    if not settings.gateway_read_endpoint:
        return None
    if embedded_path(resolve_dsn(settings.dsn)) is None:
        raise GatewayError("gateway_read_endpoint serves an embedded store; with a ClickHouse "
                           "server, readers connect to the server itself")
    try:
        return ReaderAuth.from_file(settings.gateway_readers_file)
    except ValueError as exc:
        raise GatewayError(str(exc)) from exc


def start_read_listener(settings: Settings, sink: LocalSink, readers: ReaderAuth,
                        metrics: Metrics) -> HttpListener:
    """Serve reads of the owner's store, and write where into the store directory (the
    read commands' "in use" message prints it)."""
    try:
        store = sink.exporter.open_store()
    except StoreError as exc:
        raise GatewayError(f"the read endpoint needs the store: {exc}") from exc
    tls_files = ((settings.gateway_tls_cert, settings.gateway_tls_key)
                 if settings.gateway_tls_cert and settings.gateway_tls_key else None)
    try:
        listener = start_read_http(metrics, store, readers, settings.gateway_read_endpoint,
                                   max_message_bytes=settings.gateway_max_message_mb << 20,
                                   tls_files=tls_files)
    except OSError as exc:
        raise GatewayError(f"cannot listen for reads: {exc}") from exc
    host = settings.gateway_read_endpoint.rpartition(":")[0].strip("[]")
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    path = embedded_path(resolve_dsn(settings.dsn))
    if path is not None:
        (path / READ_ENDPOINT_FILE).write_text(f"{host}:{listener.port}\n", "utf-8")
    return listener


def forget_read_endpoint(settings: Settings) -> None:
    path = embedded_path(resolve_dsn(settings.dsn))
    if path is not None:
        (path / READ_ENDPOINT_FILE).unlink(missing_ok=True)


def start_listeners(settings: Settings, core: GatewayCore, reuse_port: bool) -> Listeners:
    max_bytes = settings.gateway_max_message_mb * 1024 * 1024
    tls_files = ((settings.gateway_tls_cert, settings.gateway_tls_key)
                 if settings.gateway_tls_cert and settings.gateway_tls_key else None)
    listeners = Listeners()
    try:
        if settings.gateway_grpc_endpoint:
            tls = None
            if tls_files is not None:
                tls = (Path(tls_files[1]).read_bytes(), Path(tls_files[0]).read_bytes())
            listeners.grpc = start_grpc(core, settings.gateway_grpc_endpoint,
                                        max_message_bytes=max_bytes, tls=tls,
                                        reuse_port=reuse_port)
            listeners.ports["grpc"] = listeners.grpc.port
        if settings.gateway_http_endpoint:
            listeners.http = start_http(core, settings.gateway_http_endpoint,
                                        max_message_bytes=max_bytes, tls_files=tls_files,
                                        reuse_port=reuse_port)
            listeners.ports["http"] = listeners.http.port
    except (OSError, RuntimeError) as exc:
        listeners.stop()
        raise GatewayError(f"cannot listen: {exc}") from exc
    return listeners


def build_core(settings: Settings, auth: Authenticator, sink: Sink, metrics: Metrics
               ) -> GatewayCore:
    """The listeners' core: the composition root's pipeline, whose retention policies are
    the store's (read through ``sink``: the owner's store, asked over its socket by a
    worker)."""
    pipeline = compose(settings, load_policies=sink.policies).pipeline
    return GatewayCore(auth=auth, pipeline=pipeline, sink=sink,
                       metrics=metrics, tenant_mismatch=settings.gateway_tenant_mismatch,
                       max_attribute_chars=settings.gateway_max_attribute_kb * 1024)


def open_owner(settings: Settings, metrics: Metrics) -> LocalSink:
    exporter = ClickHouseSpanExporter(settings, skip_stored=True)
    try:
        exporter.open_store()
        exporter.composition.start()  # the store owner runs its maintenance (not workers)
        exporter.drain_spool(force=True)
    except StoreUnavailable:
        _log.warning("store %s unreachable at start: records will be spooled to %s",
                     redact_dsn(resolve_dsn(settings.dsn)), exporter.spool.directory)
    except ConfigError as exc:
        raise GatewayError(str(exc)) from exc
    sink = LocalSink(exporter, metrics)
    sink.update_gauges()
    sink.start_drainer()
    return sink


def run(settings: Settings, *, announce: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set)."""
    auth = check_settings(settings)
    readers = check_read_settings(settings)
    stop = stop or threading.Event()
    _install_signals(stop)
    metrics = Metrics()
    sink = open_owner(settings, metrics)
    workers: list[Any] = []
    owner: OwnerServer | None = None
    listeners: Listeners | None = None
    reads: HttpListener | None = None
    sockdir: str | None = None
    try:
        if readers is not None:
            reads = start_read_listener(settings, sink, readers, metrics)
        if settings.gateway_workers == 1:
            listeners = start_listeners(settings, build_core(settings, auth, sink, metrics),
                                        reuse_port=False)
            ports = listeners.ports
        else:
            sockdir = tempfile.mkdtemp(prefix="genai-audit-owner-")
            address, authkey = os.path.join(sockdir, "owner.sock"), os.urandom(32)
            owner = OwnerServer(sink, address, authkey)
            owner.start()
            workers, ports = _spawn_workers(settings, address, authkey, metrics)
        info = {"event": "ready", "pid": os.getpid(), "workers": settings.gateway_workers,
                "store": redact_dsn(resolve_dsn(settings.dsn)),
                "spool": str(sink.exporter.spool.directory), **{f"{k}_port": v
                                                               for k, v in ports.items()}}
        if reads is not None:
            info["read_port"] = reads.port
        _log.info("gateway ready %s", json.dumps(info))
        if announce is not None:
            announce(info)
        while not stop.wait(0.5):
            if workers and not all(w.is_alive() for w in workers):
                _log.error("a gateway worker died; shutting down so a supervisor restarts "
                           "the gateway cleanly")
                break
    finally:
        _log.info("gateway stopping")
        if listeners is not None:
            listeners.stop()
        if reads is not None:
            forget_read_endpoint(settings)
            reads.stop()
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(GRACE_S + 5)
            if worker.is_alive():
                worker.kill()
        if owner is not None:
            owner.close()
        if sockdir is not None:
            for leftover in Path(sockdir).iterdir():
                leftover.unlink()
            os.rmdir(sockdir)
        sink.close()
        sink.exporter.shutdown()
        _log.info("gateway stopped")


def _spawn_workers(settings: Settings, address: str, authkey: bytes, metrics: Metrics
                   ) -> tuple[list[Any], dict[str, int]]:
    ctx = multiprocessing.get_context("spawn")
    ready: Any = ctx.Queue()
    workers = [ctx.Process(target=worker_main, name=f"genai-audit-worker-{i}",
                           args=(settings, address, authkey, metrics.array, ready,
                                 logging.getLogger().level))
               for i in range(settings.gateway_workers)]
    for worker in workers:
        worker.start()
    ports: dict[str, int] = {}
    deadline = time.monotonic() + _WORKER_START_TIMEOUT_S
    for _ in workers:
        try:
            status, detail = ready.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise GatewayError("gateway workers did not start in time") from None
        if status != "ready":
            raise GatewayError(f"a gateway worker failed to start: {detail}")
        ports = detail
    return workers, ports


def worker_main(settings: Settings, address: str, authkey: bytes, metrics_array: Any,
                ready: Any, log_level: int) -> None:
    """A worker process: listeners + decode + pipeline; records go to the owner."""
    logging.basicConfig(level=log_level, format="%(message)s")
    stop = threading.Event()
    _install_signals(stop)
    try:
        auth = check_settings(settings)
        core = build_core(settings, auth, RemoteSink(address, authkey), Metrics(metrics_array))
        listeners = start_listeners(settings, core, reuse_port=True)
    except Exception as exc:
        ready.put(("failed", f"{type(exc).__name__}: {exc}"))
        return
    ready.put(("ready", listeners.ports))
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:  # the store owner is gone: nothing can be acknowledged
            break
    listeners.stop()


def _install_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
