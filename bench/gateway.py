"""Gateway throughput: sustained spans/s through `genai-audit serve`, p50/p99 request latency.

Compares, in one run on this machine:
* baseline: the in-process path (``ClickHouseSpanExporter.export``: same pipeline, same
  embedded store engine) in this process;
* the gateway (OTLP/HTTP protobuf, loopback) with 1 and 2 worker processes, each with its
  own embedded store in a temporary directory.
Redaction "on" runs only if the pipeline has a ``redact`` stage (issue 3); otherwise this
prints that it is not available in this build and measures what exists.

Each figure is the median of ``--rounds`` windows of ``--seconds``; ratios are to the
baseline median. Usage: ``python bench/gateway.py [--seconds 4 --rounds 3 --batch 50]``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter

ATTRS = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 80, "tenant.id": "acme", "enduser.id": "alice@example.com",
    "genai_audit.tool": "bench",
    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"'
                             + "Summarize the quarterly report for Jane Doe. " * 8 + '"}]}]',
    "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"'
                              + "The report shows steady growth. " * 8 + '"}]}]',
}


def make_spans(count: int) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for _ in range(count):
        with tracer.start_as_current_span("chat gpt-4o", attributes=ATTRS):
            pass
    return list(exporter.get_finished_spans())


def has_redaction() -> bool:
    from genai_audit.keystore import LocalKeyStore
    from genai_audit.processor.factory import default_pipeline
    with tempfile.TemporaryDirectory() as keys:
        stages = default_pipeline(Settings.load({}, env={}), LocalKeyStore(keys)).stages
    return any(stage.name == "redact" for stage in stages)


def bench_in_process(seconds: float, rounds: int, batch: int, workdir: Path) -> list[float]:
    settings = Settings.load({"dsn": f"chdb://{workdir / 'inproc'}"}, env={})
    exporter = ClickHouseSpanExporter(settings)
    results = []
    for _ in range(rounds):
        pool = make_spans(batch * 200)  # fresh ids each round: replays would be deduplicated
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds and done < len(pool):
            exporter.export(pool[done:done + batch])
            done += batch
        results.append(done / (time.perf_counter() - started))
    exporter.shutdown()
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(workers: int, workdir: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    args = [sys.executable, "-m", "genai_audit.cli.main", "serve", "--allow-unauthenticated",
            "--dsn", f"chdb://{workdir / f'gw{workers}'}", "--grpc", "off",
            "--http", f"127.0.0.1:{port}", "--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(args, env={**os.environ, "GENAI_AUDIT_CONFIG": ""}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gateway did not start")


def bench_gateway(port: int, seconds: float, batch: int, clients: int, bodies: list[bytes]
                  ) -> tuple[float, list[float]]:
    latencies: list[float] = []
    sent = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    cursor = iter(range(len(bodies)))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < stop:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            t0 = time.perf_counter()
            conn.request("POST", "/v1/traces", body=bodies[index],
                         headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"gateway answered {response.status}")
            with lock:
                latencies.append(time.perf_counter() - t0)
                sent[0] += batch

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent[0] / (time.perf_counter() - started), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50, help="spans per request/export")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    redaction = has_redaction()
    print(f"redaction stage: {'present' if redaction else 'NOT in this build (issue 3): '}"
          f"{'' if redaction else 'figures are redaction off only'}")
    print(f"cpus={os.cpu_count()} batch={args.batch} clients={args.clients} "
          f"window={args.seconds}s rounds={args.rounds}")
    with tempfile.TemporaryDirectory(prefix="genai-audit-bench-") as tmp:
        workdir = Path(tmp)
        base = statistics.median(bench_in_process(args.seconds, args.rounds, args.batch,
                                                  workdir))
        print(f"in-process exporter: {base:,.0f} spans/s (median) = baseline 1.00x")
        estimate = int(max(base, 500) * args.seconds * 3)  # enough unique spans per window
        for workers in (int(w) for w in args.workers.split(",")):
            proc, port = start_gateway(workers, workdir)
            rates, lat50, lat99 = [], [], []
            try:
                for _ in range(args.rounds):
                    spans = make_spans(estimate)
                    bodies = [encode_spans(spans[i:i + args.batch]).SerializeToString()
                              for i in range(0, len(spans), args.batch)]
                    rate, latencies = bench_gateway(port, args.seconds, args.batch,
                                                    args.clients, bodies)
                    rates.append(rate)
                    lat50.append(pct(latencies, 0.50))
                    lat99.append(pct(latencies, 0.99))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
            rate = statistics.median(rates)
            print(f"gateway workers={workers} redaction={'on' if redaction else 'off'}: "
                  f"{rate:,.0f} spans/s (median), request p50 {statistics.median(lat50):.1f} ms"
                  f" p99 {statistics.median(lat99):.1f} ms, ratio to in-process "
                  f"{rate / base:.2f}x")


if __name__ == "__main__":
    main()
