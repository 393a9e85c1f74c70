"""Redaction: this engine vs Presidio's default AnalyzerEngine + AnonymizerEngine.

Same texts, same spaCy model, one process, one core (both single-threaded), side by side:

* leak per labeled type and utility on the independent corpus's held-out split
  (``tests/redaction_corpus.py``: presidio-evaluator's templates filled by Faker in five
  locales; a value leaks if any of its letters or digits is outside every detected span,
  whatever type the engine gave it; utility is the share of words outside every labeled
  value that no detection touches);
* throughput (texts per CPU second of this process, median of --repeats, the two engines
  taking turns so a busy shared machine slows both alike) on ~1 KB texts strung from
  held-out sentences:
  ours per text (``redact``, the guard's shape) and in one batch (the stage's shape);
  Presidio's default is ``analyze`` + ``anonymize`` per text, as its docs show.

    python bench/redaction.py [--split held_out|tuning] [--texts 40] [--repeats 3] [--misses 0]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads: one core each

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import redaction_corpus as corpus

from genai_audit.processor.redaction.engine import (
    DEFAULT_MODEL,
    RedactionEngine,
    presidio_default_engines,
)
from genai_audit.processor.redaction.policy import RedactionPolicy
from genai_audit.processor.redaction.redact import redact, select


def rates(runs: Sequence[Callable[[], None]], count: int, repeats: int) -> list[float]:
    """Texts per CPU second of each run, median of ``repeats`` rounds taken in turn."""
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, out in zip(runs, samples, strict=True):
            start = time.process_time()
            run()
            out.append(count / (time.process_time() - start))
    return [statistics.median(s) for s in samples]


def ours_spans(engine: RedactionEngine, policy: RedactionPolicy,
               samples: Sequence[corpus.Sample]) -> list[list[tuple[int, int]]]:
    texts = [s.text for s in samples]
    return [[(f.start, f.end) for f in select(t, found, policy)]
            for t, found in zip(texts, engine.analyze_batch(texts), strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="held_out", choices=("held_out", "tuning"))
    parser.add_argument("--texts", type=int, default=40, help="1 KB texts for throughput")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--misses", type=int, default=0, help="print up to N misses per type")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()

    ours = RedactionEngine(args.model).warm()
    analyzer, anonymizer = presidio_default_engines(args.model)
    policy = RedactionPolicy()
    samples = corpus.load(args.split)

    def presidio_redact(text: str) -> str:
        return str(anonymizer.anonymize(text, analyzer.analyze(text, language="en")).text)

    mine = corpus.score(samples, ours_spans(ours, policy, samples))
    theirs = corpus.score(samples, [[(r.start, r.end) for r in
                                     analyzer.analyze(s.text, language="en")]
                                    for s in samples])
    print(f"model {args.model}; corpus split {args.split}: {len(samples)} sentences "
          f"(presidio-evaluator templates, Faker {', '.join(corpus.LOCALES)})")
    print(f"{'entity':36} {'genai-audit leak':>18} {'presidio default leak':>22}")
    worse = []
    for entity, (leaked, total) in mine.leaks.items():
        mark = ""
        if mine.leak(entity) > theirs.leak(entity):
            worse.append(entity)
            mark = "  <- worse"
        print(f"{entity:36} {mine.leak(entity):>8.1%} ({leaked:>3}/{total:<4}) "
              f"{theirs.leak(entity):>11.1%} ({theirs.leaks[entity][0]:>3}/{total:<4}){mark}")
    print(f"{'all structured identifiers':36} {mine.group_leak(corpus.STRUCTURED):>18.1%} "
          f"{theirs.group_leak(corpus.STRUCTURED):>22.1%}")
    print(f"{'utility (words outside PII kept)':36} {mine.utility:>18.1%} "
          f"{theirs.utility:>22.1%}")
    print("leaks more than presidio default for: " + (", ".join(worse) or "none"))

    texts = corpus.documents(samples, args.texts, 1000)
    presidio_redact(texts[0])
    redact(texts[0], engine=ours, policy=policy)
    base, single, batched = rates([
        lambda: [presidio_redact(t) for t in texts],
        lambda: [redact(t, engine=ours, policy=policy) for t in texts],
        lambda: [select(t, f, policy) for t, f in
                 zip(texts, ours.analyze_batch(texts), strict=True)]], len(texts), args.repeats)
    mean = sum(map(len, texts)) // len(texts)
    print(f"\nthroughput on {len(texts)} texts of ~{mean} chars, median of {args.repeats}, "
          f"cpu count {os.cpu_count()} (single-threaded, CPU time)")
    print(f"presidio default: {base:,.1f} texts/s ({1000 / base:.1f} ms/text)")
    print(f"genai-audit per text: {single:,.1f} texts/s ({1000 / single:.2f} ms/text), "
          f"ratio {single / base:.2f}x")
    print(f"genai-audit batched: {batched:,.1f} texts/s ({1000 / batched:.2f} ms/text), "
          f"ratio {batched / base:.2f}x")

    if args.misses:
        spans = ours_spans(ours, policy, samples)
        shown: dict[str, int] = {}
        for s, found in zip(samples, spans, strict=True):
            for label in s.labels:
                if corpus.leaked(s.text, label, found) and shown.get(label[2], 0) < args.misses:
                    shown[label[2]] = shown.get(label[2], 0) + 1
                    print(f"  missed {label[2]}: {s.text[label[0]:label[1]]!r} in "
                          f"{s.text[max(0, label[0] - 30):label[1] + 10]!r}")


if __name__ == "__main__":
    main()
