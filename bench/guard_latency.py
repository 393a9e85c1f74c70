"""Added latency of the pre-LLM guard on a ~1 KB prompt, against the stub LLM.

One process, the real openai client against the loopback stub: median wall time of a
plain call (the baseline) and of the same call through ``guard(client)``; the difference is
what the guard adds (redaction of the prompt, routing, re-filling of the answer). Also the
streaming variant. Target: under 10 ms added at the median.

    python bench/guard_latency.py [--calls 60] [--prompts 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import openai
import redaction_corpus as corpus

from genai_audit.demo.stub_llm import StubLLM
from genai_audit.instrumentation.guard import guard
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
    args = parser.parse_args()
    prompts = corpus.documents(corpus.load("held_out"), args.prompts, 1000)
    shared_engine().warm()
    with StubLLM() as stub:
        plain = openai.OpenAI(base_url=stub.base_url, api_key="bench", max_retries=0)
        guarded = guard(openai.OpenAI(base_url=stub.base_url, api_key="bench", max_retries=0),
                        policies=PolicySet())

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


if __name__ == "__main__":
    main()
