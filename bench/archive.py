"""Archive throughput and size: records/s archived to a local S3 server, bytes per record.

Builds records through the real pipeline, backdates them over several months and tenants,
then, per repeat and into a fresh prefix of a moto S3 server on 127.0.0.1:

* ``archive()``: the product path (Parquet per tenant and month, read back, SHA-256, row
  digest check, signed manifest after every object);
* baseline: one bare ``INSERT INTO FUNCTION s3(..., 'Parquet') SELECT ...`` of the same
  records (no verification, no manifest), the floor of what ClickHouse can write.

It prints the medians, their ratio, and bytes per record in the MergeTree table (compressed
on disk) versus in the Parquet objects. Then ``verify_archive()`` of each run's prefix: the
manifest signature, each object's SHA-256 and rows, and every archived row's leaf recomputed
from the Parquet and matched against the ledger's signed checkpoints (records are written
through the ledger, as the exporter writes them), against the archive rate as baseline.

    python bench/archive.py [--records 50000] [--repeats 3] [--tenants 2] [--months 2]

Each (tenant, month) is one object with a fixed cost (write, two verifying reads, digests),
so small objects archive slower per record; the figures include objects/s to show it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from _common import fresh_store, genai_spans, median, ratio_line, scratch_dir, scratch_dsn
from moto.server import ThreadedMotoServer

from genai_audit.clickhouse.archive import archive
from genai_audit.clickhouse.archive_location import ArchiveLocation
from genai_audit.clickhouse.archive_verify import verify_archive
from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter
from genai_audit.config import Settings
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.factory import default_pipeline

KEY_ID, SECRET = "bench", "bench-secret"


def populate(store: Store, keys: LocalKeyStore, records: int, tenants: int, months: int) -> None:
    settings = Settings.load(env={})
    pipeline = default_pipeline(settings, keys)
    ledger = Ledger(store, keys.signing_key(), row_columns=COLUMNS, checkpoint_seconds=3600)
    writer = InteractionWriter(store, ledger)
    start = datetime.now(UTC) - timedelta(days=70)
    spans = genai_spans(records, tenants=tenants)
    for i in range(0, len(spans), 2000):
        batch = pipeline.build(spans[i:i + 2000])
        for j, record in enumerate(batch):
            record.event_timestamp = start - timedelta(days=(i + j) % (30 * months),
                                                       seconds=(i + j) % 86_400)
        writer.write(batch)
    ledger.close()
    store.command("OPTIMIZE TABLE interactions FINAL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--months", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID,
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    s3.create_bucket(Bucket="bench-archive")
    store = fresh_store(scratch_dsn())
    keys = LocalKeyStore(scratch_dir("bench-keys-"))
    populate(store, keys, args.records, args.tenants, args.months)
    cutoff = datetime.now(UTC)
    total = int(store.scalar("SELECT count() FROM interactions"))
    print(f"{total} records, {args.tenants} tenants, {args.months} months; "
          f"{args.repeats} repeats; S3: moto on {host}:{port}")

    archive_rps, bare_rps, parquet_bytes, objects_ps, verify_rps = [], [], [], [], []
    for _ in range(args.repeats):
        prefix = uuid.uuid4().hex[:8]
        location = ArchiveLocation.parse(f"s3://bench-archive/{prefix}", endpoint_url=endpoint,
                                         access_key_id=KEY_ID, secret_access_key=SECRET)
        started = time.perf_counter()
        run = archive(store, keys, location, before=cutoff, settle_seconds=0)
        elapsed = time.perf_counter() - started
        archive_rps.append(run.rows / elapsed)
        objects_ps.append(len(run.written) / elapsed)
        parquet_bytes.append(run.bytes / run.rows)
        started = time.perf_counter()
        checked = verify_archive(store, location, keys.signing_key().public_key(),
                                 record=False)
        if not checked.ok or checked.leaves != run.rows:
            raise SystemExit(f"verify found problems: {[str(p) for p in checked.problems[:5]]}")
        verify_rps.append(checked.leaves / (time.perf_counter() - started))
        bare = ArchiveLocation.parse(f"s3://bench-archive/bare-{prefix}", endpoint_url=endpoint,
                                     access_key_id=KEY_ID, secret_access_key=SECRET)
        fn, params = bare.function("all.parquet", "Parquet")
        started = time.perf_counter()
        store.command(f"INSERT INTO FUNCTION {fn} SELECT * FROM interactions", params,
                      settings=bare.write_settings)
        bare_rps.append(total / (time.perf_counter() - started))

    on_disk = int(store.scalar(
        "SELECT sum(data_compressed_bytes) FROM system.parts WHERE active "
        "AND database = currentDatabase() AND table = 'interactions'")) / total
    archive_m, bare_m = median(archive_rps), median(bare_rps)
    print(ratio_line("archive (verified, signed manifest)", archive_m, "records/s",
                     "bare Parquet write", bare_m, archive_m / bare_m, "informational"))
    verify_m = median(verify_rps)
    print(ratio_line("verify --archive (leaves vs ledger)", verify_m, "records/s",
                     "archive", archive_m, verify_m / archive_m, "informational"))
    parquet_m = median(parquet_bytes)
    print(ratio_line("Parquet", parquet_m, "bytes/record", "MergeTree compressed", on_disk,
                     parquet_m / on_disk, "informational"))
    print(f"objects per run: {len(run.written)} (median {median(objects_ps):.1f} objects/s, "
          f"{run.rows // max(len(run.written), 1):,} records/object)")
    print("runs (records/s): archive " + ", ".join(f"{v:,.0f}" for v in archive_rps)
          + " | bare " + ", ".join(f"{v:,.0f}" for v in bare_rps)
          + " | verify " + ", ".join(f"{v:,.0f}" for v in verify_rps))
    server.stop()


if __name__ == "__main__":
    main()
