"""Erasure latency and the ingest cost of encryption at rest.

1. GDPR Art. 17 erasure (``erase_subject``: count the subject's records, append the
   tombstone, destroy the keystore row) for a subject with 1k, 100k and 1M records among
   as many records of other subjects. The target is flat and under 100 ms; the seed
   article's UPDATE-based erasure is quoted at 2 s per 1000 records. Each size is repeated
   with fresh subjects; the ratio is to the smallest size (flatness).
2. The ledger's share of an erasure: writing one tombstone through a one-command ledger
   session (position, leaf hash, insert, checkpoint signed and stored) against a bare insert
   of the same row, interleaved.
3. Ingest records/s of the span -> row path (``ClickHouseSpanExporter.export``) with the
   default pipeline against the same pipeline without ``EncryptionStage``, interleaved
   batch by batch so machine noise hits both alike. Target ratio >= 0.7. Redaction is left
   out of both (as in ``bench/ingest.py``): its model dominates everything else and
   ``bench/redaction.py`` measures it; with it, this leg measured the model (about 300
   records/s, batches timing out), not encryption. Each exporter is shut down (its final
   checkpoints signed) before its database is dropped: a live ledger timer signing into a
   dropped database is what printed "ledger checkpoint ... failed (StoreError)".

    python bench/erase.py [--sizes 1000,100000,1000000] [--repeats 3]
                          [--records 10000] [--batch 512] [--ingest-repeats 5]
                          [--tombstones 30]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    fresh_store,
    genai_spans,
    median,
    pipeline_exporter,
    ratio_line,
    scratch_dir,
    scratch_dsn,
)

from genai_audit.clickhouse.erasure import TOMBSTONE_COLUMNS, ErasureStatus, erase_subject
from genai_audit.clickhouse.ledger.leaf import SUBJECT_ERASURES
from genai_audit.clickhouse.ledger.session import append, current_user, ledger_session
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.encryption import EncryptionStage
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline

ARTICLE_MS_PER_1000 = 2000.0

# Rows shaped like real encrypted records: 400 bytes of base64-like ciphertext per column.
_FILL = """
INSERT INTO interactions (id, event_timestamp, tenant_id, gdpr_pseudonymized_user_key,
    tool_name, model, prompt_tokens, response_tokens, total_cost, content_state,
    content_key_id, full_prompt_text, full_response_text, response_preview, retention_days)
SELECT generateUUIDv4(), now64(6) - toIntervalMillisecond(number), 'bench-tenant',
    if(number % 2 = 0, {p:String}, concat('other-', toString(number % 997))),
    'contract_review', 'gpt-4o', 120, 80, toDecimal64(0.00123, 9), 'encrypted', {k:String},
    base64Encode(randomString(300)), base64Encode(randomString(300)),
    base64Encode(randomString(120)), 3650
FROM numbers({n:UInt64})
"""


def settle(store: Store, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and store.scalar(
            "SELECT count() FROM system.merges WHERE database = currentDatabase()"):
        time.sleep(0.2)


def erase_latency(dsn: str, sizes: list[int], repeats: int) -> dict[int, float]:
    keys = LocalKeyStore(scratch_dir("bench-erase-keys-"))
    results: dict[int, float] = {}
    for size in sizes:
        store = fresh_store(dsn)
        timings = []
        for rep in range(repeats):
            user = f"subject-{size}-{rep}"
            subject = keys.subject_keys("bench-tenant", [user])[user]
            store.command(_FILL, {"p": subject.pseudonym, "k": subject.key_id, "n": 2 * size},
                          settings={"max_insert_block_size": 1_048_576})
            settle(store)  # time the erasure, not the bulk load's background merges
            started = time.perf_counter()
            result = erase_subject(store, keys, tenant_id="bench-tenant", user_id=user,
                                   reason="subject-request", operator="bench")
            timings.append((time.perf_counter() - started) * 1000)
            assert result.status is ErasureStatus.ERASED and result.records_affected == size
        results[size] = median(timings)
        print(f"  erase subject with {size:>9,} records: median {results[size]:7.1f} ms "
              f"over {repeats} ({', '.join(f'{t:.1f}' for t in timings)})", flush=True)
        store.command(f"DROP DATABASE `{store.database}`")
    return results


def tombstone_cost(dsn: str, repeats: int) -> tuple[float, float]:
    """Median ms to write one tombstone through the ledger, and as a bare insert."""
    keys = LocalKeyStore(scratch_dir("bench-tombstone-keys-"))
    store = fresh_store(dsn)

    def row() -> list[object]:
        return [uuid.uuid4(), datetime.now(UTC), "bench-tenant", "p" * 64, "k", "req", 1000,
                "bench", "objection", "bench", current_user(store)]

    ledgered, bare = [], []
    for i in range(repeats):
        for kind in (("ledger", "bare") if i % 2 else ("bare", "ledger")):
            started = time.perf_counter()
            if kind == "ledger":
                with ledger_session(store, keys, SUBJECT_ERASURES, TOMBSTONE_COLUMNS) as lg:
                    append(store, lg, [row()])
                ledgered.append((time.perf_counter() - started) * 1000)
            else:
                store.insert("subject_erasures", [row()], TOMBSTONE_COLUMNS)
                bare.append((time.perf_counter() - started) * 1000)
    assert store.scalar("SELECT count() FROM ledger_checkpoints "
                        "WHERE source_table != 'ledger'") == repeats  # not the logs of logs
    store.command(f"DROP DATABASE `{store.database}`")
    return median(ledgered), median(bare)


def ingest_ratio(dsn: str, records: int, batch: int, repeats: int) -> tuple[float, float]:
    keys = LocalKeyStore(scratch_dir("bench-ingest-keys-"))
    settings = Settings.load(env={})
    spans = genai_spans(records)
    batches = [spans[i:i + batch] for i in range(0, len(spans), batch)]
    default_pipeline(settings, keys).build(spans[:200])  # create the subjects once
    with_rps, without_rps = [], []
    for _ in range(repeats):
        sealed, clear = fresh_store(dsn), fresh_store(dsn)
        with_encryption = pipeline_exporter("production", settings, sealed, keys,
                                            redaction=False)
        without = ClickHouseSpanExporter(settings, store=clear, keys=keys, pipeline=RecordPipeline(
            s for s in with_encryption.pipeline.stages if not isinstance(s, EncryptionStage)))
        exporters = [(with_encryption, [0.0]), (without, [0.0])]
        for i, chunk in enumerate(batches):
            for exporter, elapsed in exporters[::1 if i % 2 else -1]:  # alternate who goes first
                started = time.perf_counter()
                exporter.export(chunk)
                elapsed[0] += time.perf_counter() - started
        for store in (sealed, clear):
            assert store.scalar("SELECT count() FROM interactions") == records
        assert sealed.scalar("SELECT countIf(content_state = 'encrypted') FROM interactions"
                             ) == records
        with_rps.append(records / exporters[0][1][0])
        without_rps.append(records / exporters[1][1][0])
        for exporter, _ in exporters:
            exporter.shutdown()  # final checkpoints, before the database goes
        for store in (sealed, clear):
            store.command(f"DROP DATABASE `{store.database}`")
    return median(with_rps), median(without_rps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--ingest-repeats", type=int, default=5)
    parser.add_argument("--tombstones", type=int, default=30)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    dsn = scratch_dsn()

    print(f"erasure latency (medians over {args.repeats} subjects per size; as many records "
          "of other subjects beside each)")
    latency = erase_latency(dsn, sizes, args.repeats)
    smallest = latency[sizes[0]]
    for size in sizes:
        article = ARTICLE_MS_PER_1000 * size / 1000
        print(ratio_line(f"erase {size:,} records", latency[size], "ms",
                         f"erase {sizes[0]:,} records", smallest, latency[size] / smallest,
                         "~1.0 (flat), each < 100 ms")
              + f" | article's UPDATE: ~{article:,.0f} ms, {article / latency[size]:,.0f}x slower")

    print(f"tombstone write, {args.tombstones} of each, interleaved (medians)")
    ledgered, bare = tombstone_cost(dsn, args.tombstones)
    print(ratio_line("tombstone through the ledger (checkpoint signed)", ledgered, "ms",
                     "bare insert", bare, ledgered / bare, "adds well under the 100 ms budget")
          + f" | the ledger adds {ledgered - bare:.1f} ms per erasure")

    print(f"ingest, records={args.records} batch={args.batch} repeats={args.ingest_repeats} "
          "(medians)")
    sealed, clear = ingest_ratio(dsn, args.records, args.batch, args.ingest_repeats)
    print(ratio_line("span->row with encryption", sealed, "records/s", "without encryption",
                     clear, sealed / clear, ">= 0.7"))


if __name__ == "__main__":
    main()
