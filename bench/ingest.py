"""Ingest throughput: span -> record pipeline -> row in the embedded store.

Compares, in one run, records/s of the full in-process path (ClickHouseSpanExporter.export:
normalize, pseudonymize, redact, render, commit, encrypt, price, retention, ledger, insert
with deduplication token), of the same path without the redaction stage (its cost shown
apart: bench/redaction.py measures it in detail), and of a bare clickhouse-connect insert of
the same final rows. The two are interleaved
batch by batch (each into its own database of one embedded store) so that the machine's
noise hits both alike; figures are medians over repeats.

    python bench/ingest.py [--records 20000] [--batch 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_database, genai_spans, median, ratio_line, scratch_dsn

from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, TABLE, record_row
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline


def fresh(dsn: str) -> Store:
    store = Store.open(dsn, fresh_database())
    migrate(store)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    dsn = scratch_dsn()
    keys = LocalKeyStore(tempfile.mkdtemp(prefix="bench-keys-"))
    settings = Settings.load(env={})
    spans = genai_spans(args.records)
    batches = [spans[i:i + args.batch] for i in range(0, len(spans), args.batch)]
    final_rows = [[record_row(r) for r in default_pipeline(settings, keys).build(b)]
                  for b in batches]
    names = ("full pipeline", "pipeline without redaction", "bare clickhouse-connect insert")
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        full = default_pipeline(settings, keys)
        no_redaction = RecordPipeline([st for st in full.stages if st.name != "redact"])
        stores = [fresh(dsn) for _ in names]
        exporters = [ClickHouseSpanExporter(settings, store=stores[0], pipeline=full, keys=keys),
                     ClickHouseSpanExporter(settings, store=stores[1], pipeline=no_redaction,
                                            keys=keys)]
        elapsed = dict.fromkeys(names, 0.0)
        for batch, rows in zip(batches, final_rows, strict=True):
            for name, exporter in zip(names, exporters, strict=False):
                started = time.perf_counter()
                exporter.export(batch)
                elapsed[name] += time.perf_counter() - started
            started = time.perf_counter()
            stores[2].client.insert(TABLE, rows, column_names=list(COLUMNS))
            elapsed[names[2]] += time.perf_counter() - started
        for exporter in exporters:
            exporter.shutdown()  # signs the final ledger checkpoints before the drop below
        assert stores[0].scalar("SELECT count() FROM interactions") == len(spans)
        for name in names:
            rates[name].append(len(spans) / elapsed[name])
        for db in stores:
            db.command(f"DROP DATABASE `{db.database}`")

    m = {name: median(v) for name, v in rates.items()}
    bare = m[names[2]]
    print(f"records={args.records} batch={args.batch} repeats={args.repeats} (medians)")
    for name in names[:2]:
        print(ratio_line(f"span->row {name}", m[name], "records/s", names[2], bare,
                         m[name] / bare, ">= 0.5"))


if __name__ == "__main__":
    main()
