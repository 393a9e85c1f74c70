"""Added latency per chat call on the application's thread.

Three modes, interleaved block by block in one run against the stub LLM (in its own
process, so the server does not compete with the client for the GIL):
  none      - uninstrumented openai client
  bare      - opentelemetry-instrumentation-openai with an SDK TracerProvider
  pipeline  - the same plus genai-audit's ComplianceSpanProcessor + ClickHouse exporter
              (embedded store), i.e. what `OTEL_TRACES_EXPORTER=genai_audit` installs
Prints the median call latency per mode, the medians of the added latency, and the
processor's own on_start+on_end cost measured directly.

    python bench/request_overhead.py [--rounds 20] [--calls 50]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
from _common import PROMPT, median, scratch_dir, scratch_dsn
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.instrumentation import audit_context
from genai_audit.processor.span_processor import ComplianceSpanProcessor


def start_stub() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "genai_audit.demo.stub_llm"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def timed_calls(client: openai.OpenAI, n: int) -> list[float]:
    out = []
    messages = [{"role": "user", "content": PROMPT}]
    with audit_context(tenant_id="bench", user_id="u-1", tool_name="hr_helpdesk"):
        for _ in range(n):
            started = time.perf_counter()
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
            out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--schedule-delay-ms", type=int, default=Settings().schedule_delay_ms)
    args = parser.parse_args()

    stub, url = start_stub()
    client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
    bare = TracerProvider()
    settings = Settings.load({"dsn": scratch_dsn(), "keystore_dir": scratch_dir(),
                              "schedule_delay_ms": args.schedule_delay_ms}, env={})
    exporter = ClickHouseSpanExporter(settings)
    processor = ComplianceSpanProcessor(exporter, settings)
    audited = TracerProvider()
    audited.add_span_processor(processor)
    instrumentor = OpenAIInstrumentor()
    samples: dict[str, list[float]] = {"none": [], "bare": [], "pipeline": []}
    paired: list[float] = []  # per round: median(pipeline) - median(bare), drift cancels
    try:
        timed_calls(client, 20)  # warm-up: connections, imports
        for _ in range(args.rounds):
            for mode, provider in (("none", None), ("bare", bare), ("pipeline", audited)):
                if instrumentor.is_instrumented_by_opentelemetry:
                    instrumentor.uninstrument()
                if provider is not None:
                    instrumentor.instrument(tracer_provider=provider)
                samples[mode].extend(timed_calls(client, args.calls))
            paired.append(median(samples["pipeline"][-args.calls:])
                          - median(samples["bare"][-args.calls:]))
        instrumentor.uninstrument()
        processor.force_flush()
    finally:
        stub.terminate()

    m = {k: median(v) for k, v in samples.items()}
    n = args.rounds * args.calls
    print(f"calls per mode: {n}, interleaved in {args.rounds} rounds (medians, ms)")
    for mode in ("none", "bare", "pipeline"):
        print(f"  {mode:9s} {m[mode]:.3f} ms per call")
    print(f"added by bare instrumentation : {m['bare'] - m['none']:+.3f} ms "
          f"(ratio to uninstrumented {m['bare'] / m['none']:.3f})")
    print(f"added by instrumentation+pipeline: {m['pipeline'] - m['none']:+.3f} ms "
          f"(ratio {m['pipeline'] / m['none']:.3f})")
    print(f"genai-audit on top of bare instrumentation: {m['pipeline'] - m['bare']:+.3f} ms "
          "(target < 0.2 ms; the seed article's compliance layer adds ~300 ms)")
    print(f"  the same, paired round by round (median of {len(paired)} per-round deltas): "
          f"{median(paired):+.3f} ms")
    direct = processor_cost(audited, processor)
    print(f"ComplianceSpanProcessor on_start+on_end, measured directly: {direct * 1000:.1f} us "
          "median per span")
    processor.shutdown()


def processor_cost(provider: TracerProvider, processor: ComplianceSpanProcessor) -> float:
    """Median ms of span start+end with the compliance processor minus without it."""
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    plain = TracerProvider().get_tracer("b")
    audited = provider.get_tracer("b")
    with_p, without = [], []
    with audit_context(tenant_id="bench", user_id="u-1", tool_name="hr_helpdesk"):
        for _ in range(5000):
            for tracer, bucket in ((audited, with_p), (plain, without)):
                started = time.perf_counter()
                tracer.start_span("openai.chat", attributes=attrs).end()
                bucket.append((time.perf_counter() - started) * 1000)
    processor.force_flush()
    return median(with_p) - median(without)


if __name__ == "__main__":
    main()
