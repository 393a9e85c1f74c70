"""Ingest throughput: span -> record pipeline -> row in the embedded store.

Measures, in one run, records/s from span to stored row and its ratio to a bare
clickhouse-connect insert of the same final rows:

* ``processor``: the production path. Real SDK spans go through
  ``ComplianceSpanProcessor.on_end``; its worker builds each batch's records (normalize,
  pseudonymize, render, commit, encrypt, price, retention) while its writer thread inserts
  the previous batch through ``ClickHouseSpanExporter`` (ledger positions, leaf hashes,
  checkpoints, deduplication token). Timed from the first ``on_end`` to ``force_flush``.
* ``export, sequential``: the same exporter called batch by batch (``export``: build, then
  write), which is what the processor's overlap saves.
* ``bare insert``: the rows the processor stored, read back and inserted again, batch by
  batch, into a fresh database of the same store with ``client.insert`` (the floor).

Redaction is left out by default: its model dominates everything else and
``bench/redaction.py`` measures it on its own; ``--redaction`` adds it (slow). Each repeat
runs the variants in turn (order alternating) into their own databases of one store;
figures are medians over repeats.

    python bench/ingest.py [--records 10240] [--batch 512] [--repeats 5] [--redaction]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_database, genai_spans, median, ratio_line, scratch_dir, scratch_dsn
from opentelemetry.sdk.trace import ReadableSpan

from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.keystore import KeyStore, LocalKeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.span_processor import ComplianceSpanProcessor


def fresh(dsn: str) -> Store:
    store = Store.open(dsn, fresh_database())
    migrate(store)
    return store


def pipeline(settings: Settings, keys: KeyStore, redaction: bool) -> RecordPipeline:
    full = default_pipeline(settings, keys)
    return RecordPipeline(s for s in full.stages if redaction or s.name != "redact")


def through_processor(settings: Settings, store: Store, keys: KeyStore, redaction: bool,
                      spans: list[ReadableSpan]) -> float:
    exporter = ClickHouseSpanExporter(settings, store=store, keys=keys,
                                      pipeline=pipeline(settings, keys, redaction))
    processor = ComplianceSpanProcessor(exporter, settings)
    started = time.perf_counter()
    for span in spans:
        processor.on_end(span)
    assert processor.force_flush(600_000)
    seconds = time.perf_counter() - started
    processor.shutdown()  # signs the final checkpoints (not timed: the export path is)
    return seconds


def sequential(settings: Settings, store: Store, keys: KeyStore, redaction: bool,
               batches: list[list[ReadableSpan]]) -> float:
    exporter = ClickHouseSpanExporter(settings, store=store, keys=keys,
                                      pipeline=pipeline(settings, keys, redaction))
    started = time.perf_counter()
    for batch in batches:
        exporter.export(batch)
    seconds = time.perf_counter() - started
    exporter.shutdown()
    return seconds


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
    batches = [spans[i:i + args.batch] for i in range(0, len(spans), args.batch)]
    names = ("processor", "export, sequential", "bare insert")
    rates: dict[str, list[float]] = {name: [] for name in names}
    warm = fresh(dsn)  # keys, price table, compiled encoders: not part of any figure
    sequential(settings, warm, keys, args.redaction, batches[:2])
    warm.command(f"DROP DATABASE `{warm.database}`")
    for repeat in range(args.repeats):
        stores = {name: fresh(dsn) for name in names}
        runs = {
            names[0]: lambda: through_processor(settings, stores[names[0]], keys,
                                                args.redaction, spans),
            names[1]: lambda: sequential(settings, stores[names[1]], keys, args.redaction,
                                         batches),
        }
        order = names[:2] if repeat % 2 == 0 else names[1::-1]
        for name in order:
            rates[name].append(len(spans) / runs[name]())
        for name in names[:2]:
            assert stores[name].scalar("SELECT count() FROM interactions") == len(spans)
        rates[names[2]].append(len(spans) / bare_insert(stores[names[0]], stores[names[2]],
                                                         args.batch))
        assert stores[names[2]].scalar("SELECT count() FROM interactions") == len(spans)
        for store in stores.values():
            store.command(f"DROP DATABASE `{store.database}`")

    m = {name: median(v) for name, v in rates.items()}
    what = "with redaction" if args.redaction else "without redaction"
    print(f"records={args.records} batch={args.batch} repeats={args.repeats} (medians), "
          f"pipeline {what}")
    for name in names[:2]:
        print(ratio_line(f"span->row, {name}", m[name], "records/s", names[2], m[names[2]],
                         m[name] / m[names[2]], ">= 0.5")
              + f" | runs: {', '.join(f'{r:,.0f}' for r in rates[name])}")


if __name__ == "__main__":
    main()
