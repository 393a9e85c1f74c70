"""Added latency per chat call on the application's thread.

Four modes, interleaved block by block in one run against the stub LLM (in its own
process, so the server does not compete with the client for the GIL):
  none        - uninstrumented openai client
  bare        - opentelemetry-instrumentation-openai with an SDK TracerProvider
  spine       - the same plus genai-audit's ComplianceSpanProcessor and ClickHouse exporter
                (embedded store) running issue 2's pipeline: normalize, pseudonymize,
                render, commitments, price, retention, insert (target: < 0.2 ms over bare)
  production  - what `OTEL_TRACES_EXPORTER=genai_audit` installs: the spine plus redaction,
                encryption and the ledger (informational: redaction's model is CPU-bound
                Python on the worker thread, and with a stub that answers in ~2 ms the
                worker is never idle, so it competes with every call for the GIL)

The openai instrumentation is installed once: its ``uninstrument`` (0.62.x) leaves its
wrappers in place, so instrumenting per mode stacks them (one more span per call per
round, and "none" instrumented too: this bench measured that way until 2026-11-24). One
provider's processor forwards spans to the current mode's processor instead (none in
"bare"), and "none" calls the unwrapped method. After each block the mode's processor is
flushed (untimed), so a pipeline's backlog is not charged to the next mode's calls; a
block therefore has to span several of the processor's schedule delays (1000 ms: the
default 1,500 calls of ~3.5 ms do), or the pipeline's work would fall in the flush.

Prints the median call latency per mode, the medians of the added latency (also paired
round by round, which cancels the machine's drift) and the processor's own
on_start+on_end cost measured directly.

    python bench/request_overhead.py [--rounds 8] [--calls 1500] [--schedule-delay-ms N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
from _common import PROMPT, fresh_store, median, pipeline_exporter, scratch_dir, scratch_dsn
from openai.resources.chat.completions import Completions
from opentelemetry.context import Context
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from genai_audit.config import Settings
from genai_audit.instrumentation import audit_context
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.span_processor import ComplianceSpanProcessor

MODES = ("none", "bare", "spine", "production")


class Forward(SpanProcessor):
    """The one provider's processor: passes spans to the current mode's processor, if any."""

    def __init__(self) -> None:
        self.target: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.target is not None:
            self.target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.target is not None:
            self.target.on_end(span)


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


class Modes:
    """One instrumented provider, the pipelines' processors, and the switch between modes."""

    def __init__(self, settings: Settings) -> None:
        self.store = fresh_store(scratch_dsn())
        keys = LocalKeyStore(scratch_dir("bench-keys-"))
        self.processors = {name: ComplianceSpanProcessor(
            pipeline_exporter(name, settings, self.store, keys), settings)
            for name in ("spine", "production")}
        self.forward = Forward()
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.forward)
        self.unwrapped = Completions.create
        OpenAIInstrumentor().instrument(tracer_provider=self.provider)
        self.wrapped = Completions.create

    def use(self, mode: str) -> None:
        """none: the unwrapped method; bare: spans, no processor; else that pipeline's."""
        Completions.create = self.unwrapped if mode == "none" else self.wrapped  # type: ignore[method-assign]
        self.forward.target = self.processors.get(mode)

    def settle(self, mode: str) -> None:
        """Let the mode's background work finish before the next block (untimed)."""
        if mode in self.processors:
            assert self.processors[mode].force_flush(120_000)

    def close(self) -> None:
        Completions.create = self.unwrapped  # type: ignore[method-assign]
        for processor in self.processors.values():
            processor.shutdown()
        self.store.close()


def run_rounds(modes: Modes, client: openai.OpenAI, rounds: int, calls: int
               ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per mode, every call's latency; per pipeline, each round's median minus bare's."""
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    paired: dict[str, list[float]] = {"spine": [], "production": []}
    for round_no in range(rounds):
        order = MODES if round_no % 2 == 0 else MODES[::-1]
        block: dict[str, float] = {}
        for mode in order:
            modes.use(mode)
            latencies = timed_calls(client, calls)
            modes.settle(mode)
            samples[mode].extend(latencies)
            block[mode] = median(latencies)
        for name in paired:
            paired[name].append(block[name] - block["bare"])
    return samples, paired


def format_report(samples: dict[str, list[float]], paired: dict[str, list[float]],
                  rounds: int, calls: int, direct_us: float) -> Iterator[str]:
    m = {k: median(v) for k, v in samples.items()}
    yield f"calls per mode: {rounds * calls}, interleaved in {rounds} rounds (medians, ms)"
    for mode in MODES:
        yield f"  {mode:11s} {m[mode]:.3f} ms per call"
    yield (f"added by bare instrumentation: {m['bare'] - m['none']:+.3f} ms "
           f"(ratio to uninstrumented {m['bare'] / m['none']:.3f})")
    for name, note in (("spine", "target < 0.2 ms; the seed article's compliance layer "
                                 "adds ~300 ms"),
                       ("production", "informational: with redaction, encryption, ledger")):
        yield (f"genai-audit {name} on top of bare instrumentation: "
               f"{m[name] - m['bare']:+.3f} ms ({note})")
        yield (f"  paired round by round (median of {len(paired[name])} per-round deltas): "
               f"{median(paired[name]):+.3f} ms")
    yield f"ComplianceSpanProcessor on_start+on_end, measured directly: {direct_us:.1f} us per span"


def processor_cost(modes: Modes, spans: int = 5000) -> float:
    """Median µs of span start+end with the compliance processor minus without it."""
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"}
    tracer = modes.provider.get_tracer("b")
    with_p: list[float] = []
    without: list[float] = []
    with audit_context(tenant_id="bench", user_id="u-1", tool_name="hr_helpdesk"):
        for _ in range(spans):
            for mode, bucket in (("spine", with_p), ("bare", without)):
                modes.use(mode)
                started = time.perf_counter()
                tracer.start_span("openai.chat", attributes=attrs).end()
                bucket.append((time.perf_counter() - started) * 1e6)
    modes.settle("spine")
    return median(with_p) - median(without)


def main(argv: Sequence[str] | None = None,
         out: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=1500, help="calls per mode per round")
    parser.add_argument("--schedule-delay-ms", type=int, default=Settings().schedule_delay_ms)
    args = parser.parse_args(argv)

    settings = Settings.load({"schedule_delay_ms": args.schedule_delay_ms}, env={})
    stub, url = start_stub()
    modes = Modes(settings)
    client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
    try:
        for mode in MODES:  # warm-up: connections, imports, the redaction model
            modes.use(mode)
            timed_calls(client, 10)
            modes.settle(mode)
        samples, paired = run_rounds(modes, client, args.rounds, args.calls)
        direct = processor_cost(modes)
    finally:
        stub.terminate()
        modes.close()
    for line in format_report(samples, paired, args.rounds, args.calls, direct):
        out(line)


if __name__ == "__main__":
    main()
