"""Ledger benchmark: ``verify`` throughput, and what the ledger costs ingest.

1. verify: a store of --records rows (default 1M; --large for 10M) in --logs logs, made in
   SQL (INSERT ... SELECT from numbers(), leaf hashes computed by the same SQL expression
   verify uses), signed every --every records with the real checkpoint code (compact range,
   consistency proof, Ed25519 note, leaf manifest). Then full ``Verifier.run()`` --repeats
   times: records/s, median. Target: >= 1M records/s. Then the bound this machine puts on
   any verify: verify taking the stored leaf hashes (everything but the recomputation),
   and a floor for the recomputation (SHA-256 over the leaf's text columns only, unframed,
   plus the content digest check): no leaf encoding can beat the two together. Also one
   run with one row altered (the slow path that names it), for scale.
2. ingest: spans -> pipeline -> interactions, with the ledger (positions, leaf hashes,
   content digest, checkpoints) and without, interleaved batch by batch into two databases
   of one store. Ratio of records/s, medians. Target: >= 0.8. The pipeline runs without
   its redaction stage unless --redaction: the model would hide the ledger's cost.

    python bench/verify.py [--records 1000000 | --large] [--logs 4] [--repeats 3]
                           [--ingest-records 10000] [--batch 512]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_store, genai_spans, median, ratio_line, scratch_dir, scratch_dsn

from genai_audit.clickhouse.ledger import merkle
from genai_audit.clickhouse.ledger.leaf import (
    CONTENT_TTL,
    INTERACTIONS,
    Kind,
    LeafSchema,
    sql_content_ok,
    sql_leaf_hash,
)
from genai_audit.clickhouse.ledger.log import (
    CHECKPOINT_COLUMNS,
    CHECKPOINTS_TABLE,
    Ledger,
    sign_extension,
)
from genai_audit.clickhouse.ledger.verify import Verifier
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter
from genai_audit.config import Settings
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline

ROWS_SQL = """
SELECT *, {leaf} AS leaf_hash FROM (SELECT *, {digest} AS content_digest FROM (
  SELECT
    generateUUIDv4(number) AS id,
    toDateTime64(now64(6) - toIntervalMicrosecond(number * 997), 6, 'UTC') AS event_timestamp,
    concat('tenant-', toString(number % {logs:UInt32})) AS tenant_id,
    lower(hex(SHA256(toString(number % 9973)))) AS gdpr_pseudonymized_user_key,
    concat('session-', toString(number % 1000)) AS session_id,
    'bench-svc' AS service_name, 'chat' AS operation_name, 'openai' AS provider,
    'gpt-4o-mini' AS model, 'gpt-4o-mini-2024' AS response_model,
    if(number % 2 = 0, 'hr_helpdesk', 'contract_review') AS tool_name,
    'summary' AS feature_name, 'eu' AS region, 'internal' AS data_class,
    toUInt32(100 + number % 50) AS prompt_tokens, toUInt32(80) AS response_tokens,
    toUInt32(0) AS cached_tokens, toDecimal64(number % 1000, 9) / 1000000 AS total_cost,
    '2025-01' AS pricing_version, number % 7 = 0 AS has_pii_detected,
    number % 7 = 0 AS pii_redacted_before_llm,
    if(number % 7 = 0, map('EMAIL', toUInt32(1)), map()) AS pii_entity_counts,
    false AS hipaa_compliant_route, 'plaintext' AS content_state, '' AS content_key_id,
    SHA256(concat('p', toString(number))) AS prompt_hash,
    SHA256(concat('r', toString(number))) AS response_hash,
    concat('Noted: summary of vendor review #', toString(number)) AS response_preview,
    concat('[{"role":"user","parts":[{"type":"text","content":"Please summarize the attached ',
           'quarterly vendor review #', toString(number), '"}]}]') AS full_prompt_text,
    concat('[{"role":"assistant","parts":[{"type":"text","content":"Noted: summary #',
           toString(number), '"}]}]') AS full_response_text,
    concat('chatcmpl-', toString(number)) AS request_id, toInt32(200) AS status_code,
    '' AS error_type, toUInt32(150 + number % 300) AS latency_ms, ['stop'] AS finish_reasons,
    false AS is_streaming, lower(hex(SHA256(toString(number)))) AS trace_id,
    substring(lower(hex(SHA256(toString(number)))), 1, 16) AS span_id,
    CAST([], 'Array(String)') AS flags, toUInt16(1) AS record_version,
    toUInt16(3650) AS retention_days, toUInt16(3650) AS content_retention_days,
    toUInt32(0) AS cache_write_tokens, toUInt32(0) AS reasoning_tokens,
    CAST([], 'Array(String)') AS producers, CAST([], 'Array(String)') AS merged_span_ids,
    concat('interactions/tenant-', toString(number % {logs:UInt32}), '/bench-writer') AS log_id,
    intDiv(number, {logs:UInt32}) AS log_index, toUInt8({version:UInt8}) AS leaf_version
  FROM numbers({start:UInt64}, {count:UInt64})))
"""


def build_store(store: Store, keys: LocalKeyStore, records: int, logs: int, every: int) -> None:
    columns = [*COLUMNS, "log_id", "log_index", "leaf_version", "content_digest", "leaf_hash"]
    framed = ", ".join(f"toString(length(`{c}`)), ':', `{c}`, ','" for c in CONTENT_TTL.covers)
    sql = ROWS_SQL.replace("{leaf}", sql_leaf_hash(INTERACTIONS)).replace(
        "{digest}", f"SHA256(concat({framed}))")
    step = 1_000_000
    for start in range(0, records, step):
        store.command(f"INSERT INTO interactions ({', '.join(columns)}) {sql}",
                      {"logs": logs, "start": start, "count": min(step, records - start),
                       "version": INTERACTIONS.current})
    key = keys.signing_key()
    for log_id, tenant, blob_hex, ids in store.rows(
            "SELECT log_id, any(tenant_id), arrayStringConcat(arraySort((h, i) -> i, "
            "groupArray(hex(leaf_hash)), groupArray(log_index))), "
            "arraySort((x, i) -> i, groupArray(id), groupArray(log_index)) "
            "FROM interactions GROUP BY log_id"):
        blob = bytes.fromhex(blob_hex)
        leaves = [blob[i:i + 32] for i in range(0, len(blob), 32)]
        size, compact, root, rows = 0, [], merkle.EMPTY_ROOT, []
        while size < len(leaves):
            new = [(leaf, rid.bytes, 0, 0) for leaf, rid in zip(leaves[size:size + every],
                                                             ids[size:size + every],
                                                             strict=True)]
            signed = sign_extension(store.database, "interactions", log_id, tenant, size,
                                    compact, root, new, key)
            rows.append(signed.row)
            size, compact, root = signed.size, signed.compact, signed.root
        store.insert(CHECKPOINTS_TABLE, rows, CHECKPOINT_COLUMNS)


class StoredLeaves(Verifier):
    """``verify`` minus the leaf recomputation (it takes the stored leaf hashes): what the
    tree, positions, signatures and queries cost. A bound for the bench, never a check."""

    def _use(self, schema: LeafSchema) -> None:
        super()._use(schema)
        self._leaf_sql = "`leaf_hash`"


def floor_sql() -> str:
    """The least any leaf recomputation costs: SHA-256 over the leaf's text and byte columns
    alone (no framing, no numbers, dates, arrays or maps), plus the content digest check."""
    text = ", ".join(f"`{f.column}`" for f in INTERACTIONS.fields()
                     if f.kind in (Kind.STRING, Kind.BYTES))
    return (f"SELECT sum(SHA256(concat(char(0), {text})) = leaf_hash) "
            f"+ sum({sql_content_ok(CONTENT_TTL)}) FROM interactions")


def timed_rate(records: int, repeats: int, run: Callable[[], object]) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        rates.append(records / (time.perf_counter() - started))
    return median(rates)


def bench_bounds(store: Store, verifier_key: Ed25519PublicKey, records: int,
                 repeats: int) -> None:
    """Why the target is out of reach on this machine: the rest of verify, plus the floor."""
    rest = timed_rate(records, repeats,
                      lambda: StoredLeaves(store, verifier_key).run(strict=True))
    floor = timed_rate(records, repeats, lambda: store.rows(floor_sql()))
    bound = 1 / (1 / rest + 1 / floor)
    print(f"  verify without recomputing leaves (tree, positions, signatures): {rest:,.0f} "
          f"records/s")
    print(f"  floor of recomputing leaves (SHA-256 of the leaf's text columns only, unframed, "
          f"+ content digest check): {floor:,.0f} records/s")
    print(ratio_line("  so at most", bound, "records/s", "target", 1_000_000,
                     bound / 1_000_000, ">= 1.00")
          + " | with any leaf encoding, on this machine's cores")


def bench_verify(args: argparse.Namespace, dsn: str, keys: LocalKeyStore) -> None:
    store = fresh_store(dsn)
    started = time.perf_counter()
    build_store(store, keys, args.records, args.logs, args.every)
    print(f"built {args.records:,} records in {args.logs} logs, a checkpoint every "
          f"{args.every:,} records, in {time.perf_counter() - started:.1f}s")
    verifier = Verifier(store, keys.signing_key().public_key())
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = verifier.run(strict=True)
        seconds = time.perf_counter() - started
        assert result.ok and result.records == args.records, result.findings[:3]
        rates.append(args.records / seconds)
    rate = median(rates)
    print(ratio_line("verify", rate, "records/s", "target", 1_000_000, rate / 1_000_000,
                     ">= 1.00") + f" | runs: {', '.join(f'{r:,.0f}' for r in rates)}")
    bench_bounds(store, keys.signing_key().public_key(), args.records, args.repeats)
    threads = int(store.scalar("SELECT getSetting('max_threads')"))
    store.client.set_client_setting("max_threads", 1)  # how it scales with cores
    one = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        assert verifier.run(strict=True).ok
        one.append(args.records / (time.perf_counter() - started))
    store.client.set_client_setting("max_threads", threads)
    print(ratio_line(f"verify on {threads} threads", rate, "records/s", "on 1 thread",
                     median(one), rate / median(one), "informational")
          + f" | ~{1_000_000 / median(one):.1f} cores for 1M records/s at this per-core rate")
    store.command("ALTER TABLE interactions UPDATE total_cost = total_cost * 2 "
                  "WHERE log_id = 'interactions/tenant-0/bench-writer' AND log_index = 12345",
                  settings={"mutations_sync": 2})
    started = time.perf_counter()
    result = verifier.run()
    seconds = time.perf_counter() - started
    assert [(f.kind, f.position) for f in result.findings] == [("modified", 12345)]
    print(f"verify with one record altered (named: {result.findings[0].kind} at position "
          f"{result.findings[0].position}): {seconds:.2f}s, "
          f"{args.records / seconds:,.0f} records/s")
    store.command(f"DROP DATABASE `{store.database}`")


def bench_ingest(args: argparse.Namespace, dsn: str, keys: LocalKeyStore) -> None:
    settings = Settings.load(env={})
    spans = genai_spans(args.ingest_records)
    batches = [spans[i:i + args.batch] for i in range(0, len(spans), args.batch)]
    wall: list[list[float]] = [[], []]  # records/s with, without the ledger
    cpu: list[list[float]] = [[], []]  # the same on this process's CPU time (all threads)
    for _ in range(args.repeats):
        stores = [fresh_store(dsn) for _ in range(2)]
        ledger = Ledger(stores[0], keys.signing_key(), row_columns=COLUMNS,
                        checkpoint_records=settings.ledger_checkpoint_records,
                        checkpoint_seconds=settings.ledger_checkpoint_seconds)
        writers = [InteractionWriter(stores[0], ledger), InteractionWriter(stores[1])]
        pipelines = [RecordPipeline(s for s in default_pipeline(settings, keys).stages
                                    if args.redaction or s.name != "redact")
                     for _ in range(2)]
        took, used = [0.0, 0.0], [0.0, 0.0]
        for n, batch in enumerate(batches):
            for k in ((0, 1) if n % 2 == 0 else (1, 0)):  # alternate who goes first
                started, cpu0 = time.perf_counter(), time.process_time()
                writers[k].write(pipelines[k].build(batch))
                took[k] += time.perf_counter() - started
                used[k] += time.process_time() - cpu0
        started, cpu0 = time.perf_counter(), time.process_time()
        ledger.close()  # the final checkpoints belong to the ledger's cost
        took[0] += time.perf_counter() - started
        used[0] += time.process_time() - cpu0
        assert Verifier(stores[0], keys.signing_key().public_key()).run(strict=True).ok
        for k in (0, 1):
            wall[k].append(len(spans) / took[k])
            cpu[k].append(len(spans) / used[k])
        for s in stores:
            s.command(f"DROP DATABASE `{s.database}`")
    for label, series in (("wall clock", wall), ("CPU time", cpu)):
        w, wo = median(series[0]), median(series[1])
        print(ratio_line(f"ingest with ledger ({label})", w, "records/s", "without ledger", wo,
                         w / wo, ">= 0.80"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--large", action="store_true", help="10M records")
    parser.add_argument("--logs", type=int, default=4)
    parser.add_argument("--every", type=int, default=4096, help="records per checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ingest-records", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--redaction", action="store_true",
                        help="ingest with the redaction stage too (it dominates: the ratio "
                             "then says little about the ledger)")
    args = parser.parse_args()
    if args.large:
        args.records = 10_000_000
    dsn = scratch_dsn()
    keys = LocalKeyStore(scratch_dir("bench-keys-"))
    print(f"records={args.records:,} logs={args.logs} repeats={args.repeats} (medians); "
          f"run {uuid.uuid4().hex[:6]}")
    if not args.skip_verify:
        bench_verify(args, dsn, keys)
    if not args.skip_ingest:
        bench_ingest(args, dsn, keys)


if __name__ == "__main__":
    main()
