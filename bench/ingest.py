"""Ingest throughput: span -> record pipeline -> row in the embedded store.

Compares, in one run, records/s of the full in-process path (ClickHouseSpanExporter.export:
normalize, pseudonymize, render, commit, price, retention, insert with deduplication token)
against a bare clickhouse-connect insert of the same final rows. The two are interleaved
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
    pipeline_rps, bare_rps = [], []
    for _ in range(args.repeats):
        store, bare = fresh(dsn), fresh(dsn)
        exporter = ClickHouseSpanExporter(settings, store=store,
                                          pipeline=default_pipeline(settings, keys))
        t_pipeline = t_bare = 0.0
        for batch, rows in zip(batches, final_rows, strict=True):
            started = time.perf_counter()
            exporter.export(batch)
            t_pipeline += time.perf_counter() - started
            started = time.perf_counter()
            bare.client.insert(TABLE, rows, column_names=list(COLUMNS))
            t_bare += time.perf_counter() - started
        assert store.scalar("SELECT count() FROM interactions") == len(spans)
        pipeline_rps.append(len(spans) / t_pipeline)
        bare_rps.append(len(spans) / t_bare)
        for db in (store, bare):
            db.command(f"DROP DATABASE `{db.database}`")

    p, b = median(pipeline_rps), median(bare_rps)
    print(f"records={args.records} batch={args.batch} repeats={args.repeats} (medians)")
    print(ratio_line("span->row pipeline", p, "records/s", "bare clickhouse-connect insert", b,
                     p / b, ">= 0.5"))


if __name__ == "__main__":
    main()
