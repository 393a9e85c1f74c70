"""Report time: ``build_report`` + rendering over a year of records in the embedded store.

Rows are generated inside ClickHouse (``INSERT ... SELECT FROM numbers()``): a year of
records over 5 tenants, 8 tools, 5 models, 2,000 users, ~10% with PII, a few flagged
failures. Then, interleaved over repeats, it times:

* the baseline: one scan of the same rows (``SELECT count(), sum(total_cost)`` over the
  year), the least any report over them must cost;
* the full report for all tenants over the year (every section, rendered to HTML);
* the report for one tenant.

Figures are medians; each is printed with its ratio to the baseline of the same run.

    python bench/report.py                 # 1M records
    python bench/report.py --records 10000000 --repeats 3   # 10M (target: under 10 s)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fresh_store, median, scratch_dsn

from genai_audit.clickhouse.reports import build_report
from genai_audit.clickhouse.reports.render import format_html
from genai_audit.clickhouse.store import Store

CHUNK = 2_000_000

GENERATE = """
INSERT INTO interactions (id, event_timestamp, tenant_id, gdpr_pseudonymized_user_key,
    session_id, service_name, operation_name, provider, model, response_model, tool_name,
    feature_name, region, data_class, prompt_tokens, response_tokens, cached_tokens,
    total_cost, pricing_version, has_pii_detected, pii_redacted_before_llm,
    pii_entity_counts, hipaa_compliant_route, content_state, prompt_hash, response_hash,
    response_preview, full_prompt_text, full_response_text, request_id, status_code,
    error_type, latency_ms, finish_reasons, is_streaming, trace_id, span_id, flags,
    record_version, retention_days)
SELECT
    generateUUIDv4(number),
    {end:DateTime64(6, 'UTC')} - toIntervalMicrosecond(intHash64(number) % (365 * 86400000000)),
    concat('tenant-', toString(number % 5)),
    hex(MD5(concat('user-', toString(intHash32(number) % 2000)))),
    toString(intHash32(number) % 100000), 'bench-svc', 'chat', 'openai',
    arrayElement(['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'o3-mini', 'mystery-llm'],
                 1 + intHash32(number + 1) % 5) AS m, m,
    arrayElement(['contract_review', 'hr_helpdesk', 'supply_chain_forecast', 'sales_email',
                  'support_chat', 'code_review', 'patient_intake', 'legal_search'],
                 1 + intHash32(number + 2) % 8) AS tool,
    concat(tool, '_main'), if(number % 7 = 0, 'eu', 'us'),
    if(tool = 'patient_intake', 'phi', ''),
    100 + intHash32(number + 3) % 900 AS pt, 50 + intHash32(number + 4) % 400 AS rt, 0,
    if(m = 'mystery-llm', 0, toDecimal64((pt * 2.5 + rt * 10) / 1000000, 9)), '2026-11-01',
    number % 10 = 0, number % 10 = 0 AND number % 200 != 0,
    if(number % 10 = 0, map('EMAIL_ADDRESS', toUInt32(1 + number % 3)), map()),
    tool = 'patient_intake' AND number % 50 != 0,
    if(number % 1000 = 1, 'withheld', 'encrypted'),
    unhex(hex(SHA256(toString(number)))), unhex(hex(SHA256(toString(number + 1)))),
    '', '', '', toString(number), if(number % 100 = 3, 429, 200), '',
    20 + intHash32(number + 5) % 3000, ['stop'], number % 3 = 0, hex(number), hex(number),
    multiIf(m = 'mystery-llm', ['unknown_model'], number % 1000 = 1,
            ['content_withheld', 'redaction_failed'], []),
    1, 730
FROM numbers({offset:UInt64}, {n:UInt64})
"""


def populate(store: Store, records: int, end: datetime) -> float:
    started = time.perf_counter()
    for offset in range(0, records, CHUNK):
        n = min(CHUNK, records - offset)
        store.command(GENERATE, {"end": end, "offset": offset, "n": n})
        print(f"  generated {offset + n:,} / {records:,} rows", file=sys.stderr)
    return time.perf_counter() - started


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dsn", help="store to use (default: a scratch embedded store)")
    args = parser.parse_args()

    scratch = None if args.dsn else scratch_dsn()
    store = fresh_store(args.dsn or scratch)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=365)
    seconds = populate(store, args.records, end)
    held = store.scalar("SELECT count() FROM interactions")
    print(f"records: {held:,} (generated in {seconds:.1f} s), store {store.display_dsn}")

    def baseline() -> None:
        store.rows("SELECT count(), sum(total_cost) FROM interactions "
                   "WHERE event_timestamp >= {s:DateTime64(6, 'UTC')} "
                   "AND event_timestamp < {e:DateTime64(6, 'UTC')}", {"s": start, "e": end})

    def full_report() -> None:
        format_html(build_report(store, tenant=None, start=start, end=end))

    def tenant_report() -> None:
        format_html(build_report(store, tenant="tenant-1", start=start, end=end))

    full_report()  # warm-up: first touch of the parts
    runs: dict[str, list[float]] = {"baseline": [], "all": [], "tenant": []}
    for _ in range(args.repeats):
        runs["baseline"].append(timed(baseline))
        runs["all"].append(timed(full_report))
        runs["tenant"].append(timed(tenant_report))
    base = median(runs["baseline"])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (shared: figures are noisy)")
    print(f"baseline scan (count + sum over {held:,} rows): median {base * 1000:,.0f} ms")
    for key, label in (("all", "report, all tenants, 1 year, html"),
                       ("tenant", "report, one tenant, 1 year, html")):
        value = median(runs[key])
        print(f"{label}: median {value:,.2f} s | ratio to baseline scan {value / base:,.1f}x "
              f"| {held / value / 1e6:,.2f} M records/s (target: 10M records in < 10 s)")
    store.command(f"DROP DATABASE IF EXISTS `{store.database}` SYNC")
    store.close()
    if scratch:
        shutil.rmtree(scratch[len("chdb://"):], ignore_errors=True)


if __name__ == "__main__":
    main()
