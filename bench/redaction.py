"""Redaction: this engine vs Presidio's default AnalyzerEngine + AnonymizerEngine.

Same texts, same spaCy model, one process, one core (both single-threaded):

* throughput (texts/s, median of --repeats) on ~200-char and ~1 KB texts: ours in
  pipeline batches (the stage's shape) and per text (the guard's shape); Presidio's
  default is ``analyze`` + ``anonymize`` per text, as its docs show;
* recall per entity type on the labeled corpus (a value counts as caught only if none of
  its letters or digits survive, whatever type the engine gave it: a leak is a leak) and
  precision per detected type (detections overlapping no labeled value are false).

    python bench/redaction.py [--texts 60] [--repeats 3] [--per-entity 30]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
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

# Presidio's types under the names this project uses (for precision per type).
PRESIDIO_TYPES = {"US_BANK_NUMBER": "ACCOUNT_NUMBER", "US_DRIVER_LICENSE": "LICENSE_NUMBER",
                  "MEDICAL_LICENSE": "LICENSE_NUMBER", "US_PASSPORT": "LICENSE_NUMBER",
                  "US_ITIN": "UNIQUE_ID", "UK_NHS": "UNIQUE_ID"}


def best_rate(run: Callable[[], None], count: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=60, help="texts per size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-entity", type=int, default=30, help="labeled samples per type")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    ours = RedactionEngine(args.model).warm()
    analyzer, anonymizer = presidio_default_engines(args.model)
    policy = RedactionPolicy()
    rng = random.Random(20261123)

    def presidio_redact(text: str) -> str:
        return str(anonymizer.anonymize(text, analyzer.analyze(text, language="en")).text)

    print(f"model {args.model}; {args.texts} texts per size; median of {args.repeats} runs; "
          f"cpu count {os.cpu_count()} (single-threaded)")
    print(f"{'size':>6} {'presidio default':>17} {'ours per text':>14} {'ours batched':>13} "
          f"{'ratio/text':>11} {'ratio batch':>12}")
    for size in (200, 1000):
        texts = [d.text for d in corpus.documents(rng, args.texts, size)]
        presidio_redact(texts[0])
        redact(texts[0], engine=ours, policy=policy)
        base = best_rate(lambda t=texts: [presidio_redact(x) for x in t], len(texts),
                         args.repeats)
        single = best_rate(lambda t=texts: [redact(x, engine=ours, policy=policy) for x in t],
                           len(texts), args.repeats)
        batched = best_rate(lambda t=texts: [select(x, f, policy) for x, f in
                                             zip(t, ours.analyze_batch(t), strict=True)],
                            len(texts), args.repeats)
        mean = sum(map(len, texts)) // len(texts)
        print(f"{mean:>5}c {base:>13.1f}/s {single:>11.1f}/s {batched:>10.1f}/s "
              f"{single / base:>10.2f}x {batched / base:>11.2f}x")

    samples = [corpus.sample(rng, e) for e in corpus.ENTITIES for _ in range(args.per_entity)]
    ours_found = [[(f.start, f.end, f.entity) for f in select(s.text, found, policy)]
                  for s, found in zip(samples, ours.analyze_batch([s.text for s in samples]),
                                      strict=True)]
    theirs_found = [[(r.start, r.end, PRESIDIO_TYPES.get(r.entity_type, r.entity_type))
                     for r in analyzer.analyze(s.text, language="en")] for s in samples]
    recall_ours = corpus.recall_by_entity(samples, [[(a, b) for a, b, _ in f] for f in ours_found])
    recall_theirs = corpus.recall_by_entity(samples, [[(a, b) for a, b, _ in f]
                                                      for f in theirs_found])
    prec_ours = corpus.precision_by_entity(samples, ours_found)
    prec_theirs = corpus.precision_by_entity(samples, theirs_found)
    print(f"\nrecall per labeled type ({args.per_entity} samples each), precision per "
          "detected type")
    print(f"{'entity':24} {'recall ours':>11} {'presidio':>9} {'prec ours':>10} {'presidio':>9}")
    worse = []
    for entity in sorted(set(recall_ours) | set(prec_theirs) | set(prec_ours)):
        ro, rt = recall_ours.get(entity), recall_theirs.get(entity)
        po, pt = prec_ours.get(entity), prec_theirs.get(entity)
        if ro is not None and rt is not None and ro < rt:
            worse.append(entity)
        print(f"{entity:24} {_f(ro):>11} {_f(rt):>9} {_f(po):>10} {_f(pt):>9}")
    total_o = statistics.mean(recall_ours.values())
    total_t = statistics.mean(recall_theirs.values())
    print(f"{'macro recall':24} {total_o:>11.3f} {total_t:>9.3f}")
    print("recall below presidio for: " + (", ".join(worse) if worse else "none"))

    held = corpus.held_out()
    ours_held = [[(f.start, f.end) for f in select(s.text, found, policy)]
                 for s, found in zip(held, ours.analyze_batch([s.text for s in held]),
                                     strict=True)]
    theirs_held = [[(r.start, r.end) for r in analyzer.analyze(s.text, language="en")]
                   for s in held]
    labels = sum(len(s.labels) for s in held)
    caught_o = sum(not corpus.leaked(s.text, lab, f) for s, f in zip(held, ours_held)
                   for lab in s.labels)
    caught_t = sum(not corpus.leaked(s.text, lab, f) for s, f in zip(held, theirs_held)
                   for lab in s.labels)
    print(f"\nheld-out sentences (written after the recognizers, other phrasings): "
          f"{labels} values; caught: ours {caught_o} ({caught_o / labels:.3f}), "
          f"presidio {caught_t} ({caught_t / labels:.3f})")
    for s, f in zip(held, ours_held):
        for lab in s.labels:
            if corpus.leaked(s.text, lab, f):
                print(f"  ours missed {lab[2]}: {s.text[lab[0]:lab[1]]!r}")


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
