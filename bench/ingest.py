"""Ingest throughput: span -> record pipeline -> row in the embedded store.

Measures, in one run, records/s from span to stored row through the production path (real
SDK spans into ``ComplianceSpanProcessor.on_end``; its worker builds each batch's records
while its writer thread inserts the previous batch through ``ClickHouseSpanExporter``;
timed from the first ``on_end`` to ``force_flush``), and its ratio to a bare
clickhouse-connect insert of the very rows that run stored (read back, inserted again
batch by batch into a fresh database of the same store with ``client.insert``).

Two pipelines, each against the bare insert of its own rows:

* ``spine``: what issue 2 builds and its 0.5 target is about: normalize, pseudonymize,
  render, content commitments, price, retention, one insert with a deduplication token.
* ``production``: the spine plus AES-GCM content encryption (its own target: keep >= 0.7 of
  the rate without it, ``bench/erase.py``) and the ledger (positions, leaf hashes,
  checkpoints; its own target: >= 0.8, ``bench/verify.py``). Together the three targets
  put this one at 0.5 x 0.7 x 0.8 = 0.28.

Redaction is left out of both unless ``--redaction``: its model dominates everything else
and ``bench/redaction.py`` measures it on its own. Each repeat runs the pipelines in turn
(order alternating), each followed by its bare insert; figures are medians over repeats,
and the ratio's spread is shown from the per-repeat pairs.

    python bench/ingest.py [--records 10240] [--batch 512] [--repeats 5] [--redaction]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PIPELINES,
    fresh_store,
    genai_spans,
    median,
    pipeline_exporter,
    ratio_line,
    scratch_dir,
    scratch_dsn,
)
from opentelemetry.sdk.trace import ReadableSpan

from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.keystore import KeyStore, LocalKeyStore
from genai_audit.processor.span_processor import ComplianceSpanProcessor


def through_processor(settings: Settings, store: Store, keys: KeyStore, name: str,
                      redaction: bool, spans: list[ReadableSpan]) -> float:
    """records/s through the processor; the spine writes without the ledger."""
    exporter = pipeline_exporter(name, settings, store, keys, redaction=redaction)
    processor = ComplianceSpanProcessor(exporter, settings)
    started = time.perf_counter()
    for span in spans:
        processor.on_end(span)
    assert processor.force_flush(600_000)
    seconds = time.perf_counter() - started
    processor.shutdown()  # signs the final checkpoints (not timed: the export path is)
    assert store.scalar("SELECT count() FROM interactions") == len(spans)
    return len(spans) / seconds


def bare_insert(stored: Store, target: Store, batch: int) -> float:
    """Insert the rows ``stored`` holds, as they are, into ``target``: the floor."""
    result = stored.client.query("SELECT * EXCEPT ingested_at FROM interactions "
                                 "ORDER BY log_id, log_index")
    columns, rows = list(result.column_names), result.result_rows
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        target.client.insert("interactions", rows[i:i + batch], column_names=columns)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_240)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--redaction", action="store_true", help="include redaction (slow)")
    args = parser.parse_args()

    dsn = scratch_dsn()
    keys = LocalKeyStore(scratch_dir("bench-keys-"))
    settings = Settings.load({"max_batch_size": args.batch, "max_queue_size": args.records * 2},
                             env={})
    spans = genai_spans(args.records)
    rates: dict[str, list[float]] = {name: [] for name in PIPELINES}
    bare: dict[str, list[float]] = {name: [] for name in PIPELINES}
    warm = fresh_store(dsn)  # keys, price table, compiled encoders: not part of any figure
    through_processor(settings, warm, keys, "production", args.redaction, spans[:1024])
    warm.command(f"DROP DATABASE `{warm.database}`")
    for repeat in range(args.repeats):
        for name in PIPELINES if repeat % 2 == 0 else PIPELINES[::-1]:
            stored, again = fresh_store(dsn), fresh_store(dsn)
            rates[name].append(through_processor(settings, stored, keys, name,
                                                 args.redaction, spans))
            bare[name].append(len(spans) / bare_insert(stored, again, args.batch))
            assert again.scalar("SELECT count() FROM interactions") == len(spans)
            for store in (stored, again):
                store.command(f"DROP DATABASE `{store.database}`")

    what = "with redaction" if args.redaction else "without redaction"
    print(f"records={args.records} batch={args.batch} repeats={args.repeats} (medians), "
          f"pipelines {what}")
    for name, target in (("spine", ">= 0.5"), ("production", "informational; 0.28 by the "
                                                              "three issues' targets")):
        m, b = median(rates[name]), median(bare[name])
        pairs = sorted(r / x for r, x in zip(rates[name], bare[name], strict=True))
        print(ratio_line(f"span->row, {name}", m, "records/s", "bare insert of its rows", b,
                         m / b, target)
              + f" | paired ratios {pairs[0]:.2f}..{pairs[-1]:.2f}"
              + f" | runs: {', '.join(f'{r:,.0f}' for r in rates[name])}")


if __name__ == "__main__":
    main()
