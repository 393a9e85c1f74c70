"""The leaf encoding: Python (write time) and ClickHouse SQL (verify) agree byte for byte,
and the leaf covers every stored column but the documented exceptions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from ledger_helpers import BASE_TIME, ledgered_writer, make_record

from genai_audit.clickhouse.disclosure import ACCESS_COLUMNS
from genai_audit.clickhouse.erasure import TOMBSTONE_COLUMNS
from genai_audit.clickhouse.ledger import leaf
from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.ledger.session import append
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.record import ContentState, Flag

pytestmark = pytest.mark.integration

AWKWARD = [
    dict(),
    dict(prompt_text="", response_text="", response_preview="", request_id=""),
    dict(prompt_text="naïve 😀 \u0000 nul, tab\t, newline\n, 12:34, comma,,",
         response_preview="日本語のテキスト", session_id="sess:1,2"),
    dict(pii_entity_counts={"PHONE": 3, "EMAIL": 2, "Zeta": 0, "éclair": 7, "": 1}),
    dict(finish_reasons=["stop", "length", ""], flags={Flag.NO_USER, Flag.UNKNOWN_MODEL}),
    dict(total_cost=Decimal("12345.1234567894")),  # rounded to 9 places once, before both
    dict(total_cost=Decimal("0.0000000005")), dict(total_cost=Decimal(0)),
    dict(total_cost=Decimal("999999999.999999999")),
    dict(event_timestamp=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         retention_days=36500, content_retention_days=36500),  # else TTLs apply at insert
    dict(event_timestamp=datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC)),
    dict(prompt_hash=b"\x00" * 32, response_hash=b"\xff" * 32, is_streaming=True,
         has_pii_detected=True, hipaa_compliant_route=True, status_code=-1, latency_ms=0),
    dict(tenant_id="tenant with spaces/and+plus%", content_state=ContentState.ENCRYPTED,
         prompt_text="\u00ff" * 5000),
]


def test_python_and_sql_leaf_hashes_are_identical(store: Store,
                                                   keystore: LocalKeyStore) -> None:
    writer = ledgered_writer(store, keystore, checkpoint_records=1000)
    records = [make_record(i, **over) for i, over in enumerate(AWKWARD)]
    writer.write(records)
    expr = leaf.sql_leaf_hash(leaf.INTERACTIONS)
    rows = store.rows(f"SELECT toString(id), hex(leaf_hash), hex({expr}) FROM interactions")
    assert len(rows) == len(records)
    for record_id, stored, recomputed in rows:
        assert stored == recomputed, record_id
    assert len({stored for _, stored, _ in rows}) == len(records)


def test_sql_leaf_data_bytes_match_python(store: Store, keystore: LocalKeyStore) -> None:
    """Not just the hash: the encoded bytes themselves, for a diagnosable failure."""
    writer = ledgered_writer(store, keystore)
    record = make_record(3, **AWKWARD[3], **AWKWARD[2])
    batch = writer.prepare([record])
    writer.insert(batch)
    row = dict(zip(batch.columns, batch.rows[0], strict=True))
    version = leaf.INTERACTIONS.current
    values = [row[c] for c in leaf.INTERACTIONS.columns(version)]
    expected = leaf.leaf_data(leaf.INTERACTIONS, version, row["log_id"], row["log_index"],
                              values)
    got = store.scalar(f"SELECT hex({leaf.sql_leaf_data(leaf.INTERACTIONS, version)}) "
                       "FROM interactions")
    assert bytes.fromhex(got) == expected
    digest = leaf.content_digest([row[c] for c in leaf.CONTENT_TTL.covers])
    assert row["content_digest"] == digest
    assert store.scalar(f"SELECT {leaf.sql_content_ok(leaf.CONTENT_TTL)} FROM interactions")


@pytest.mark.parametrize("version", sorted(leaf.INTERACTIONS.versions))
def test_compiled_encoder_matches_the_plain_definition(version: int) -> None:
    """The hot path's generated encoder and the readable reference agree on every kind."""
    from genai_audit.clickhouse.writer import COLUMNS, record_row
    for i, over in enumerate(AWKWARD):
        row = dict(zip(COLUMNS, record_row(make_record(i, **over)), strict=True))
        row["content_digest"] = bytes(range(32))
        row["total_cost"] = leaf.quantize_decimal(row["total_cost"])
        values = [row[c] for c in leaf.INTERACTIONS.columns(version)]
        assert (leaf.leaf_data(leaf.INTERACTIONS, version, "log/ä", 7, values)
                == leaf.leaf_data_generic(leaf.INTERACTIONS, version, "log/ä", 7, values))
        odd = dict(row, id=str(row["id"]), finish_reasons=("stop", 5), prompt_tokens=True,
                   flags=[], pii_entity_counts={"B": 2, "A": 1}, prompt_hash=bytearray(32),
                   event_timestamp=datetime(2024, 5, 1, 14, 0, tzinfo=timezone(
                       timedelta(hours=2))))  # the inline paths' fallbacks, same bytes
        values = [odd[c] for c in leaf.INTERACTIONS.columns(version)]
        assert (leaf.leaf_data(leaf.INTERACTIONS, version, "l", 0, values)
                == leaf.leaf_data_generic(leaf.INTERACTIONS, version, "l", 0, values))


@pytest.mark.parametrize("schema", list(leaf.SCHEMAS.values()), ids=list(leaf.SCHEMAS))
def test_every_stored_column_is_covered_or_explicitly_excluded(store: Store,
                                                               schema: leaf.LeafSchema) -> None:
    described = {name: ctype for name, ctype, *_ in store.rows(
        leaf.compose("DESCRIBE TABLE <table>", table=schema.table))}
    covered = set(schema.written_columns())
    outside = set(schema.ledger_columns) | schema.not_covered
    assert set(described) == covered | outside, "add new columns to ledger/leaf.py"
    assert described[schema.id_column] == "UUID"
    assert described[schema.time_column].startswith("DateTime64(6")
    kinds = {f.column: f.kind for version in schema.versions for f in schema.fields(version)}
    for name, kind in kinds.items():  # the kind must fit the stored type
        ctype = described[name]
        ok = {
            leaf.Kind.STRING: "String" in ctype and "Fixed" not in ctype and "Array" not in ctype
            and "Map" not in ctype,
            leaf.Kind.BYTES: ctype.startswith("FixedString"),
            leaf.Kind.UUID: ctype == "UUID",
            leaf.Kind.INT: "Int" in ctype and "Array" not in ctype,
            leaf.Kind.BOOL: ctype == "Bool",
            leaf.Kind.DECIMAL: ctype.startswith("Decimal") and ctype.endswith(", 9)"),
            leaf.Kind.DATETIME64: ctype.startswith("DateTime64(6"),
            leaf.Kind.STRING_ARRAY: ctype.startswith("Array(") and "String" in ctype,
            leaf.Kind.UUID_ARRAY: ctype == "Array(UUID)",
            leaf.Kind.STRING_INT_MAP: ctype.startswith("Map("),
        }[kind]
        assert ok, f"{name}: kind {kind} does not fit {ctype}"
    for name, width in schema.fixed_widths.items():  # SQL uses constant prefixes
        assert described[name] == f"FixedString({width})"
    for f in schema.fields():  # per-dictionary framing only where it applies
        assert f.low_cardinality == described[f.column].startswith("LowCardinality("), f


def _erasure(i: int, **over: Any) -> list[Any]:
    row = dict(erasure_id=uuid.uuid4(), erased_at=BASE_TIME + timedelta(microseconds=i),
               tenant_id="acme", gdpr_pseudonymized_user_key="p" * 64, content_key_id="k1",
               request_id=f"DSR-{i}", records_affected=i, operator="dpo", reason="objection",
               tool_version="1.0", db_user="default")
    row.update(over)
    return [row[c] for c in TOMBSTONE_COLUMNS]


def _access(i: int, **over: Any) -> list[Any]:
    row = dict(access_id=uuid.uuid4(), accessed_at=BASE_TIME + timedelta(microseconds=i),
               tenant_id="acme", actor="dr.lee", purpose="treatment", channel="show",
               record_ids=[uuid.uuid4()], user_keys=["p" * 64], records_disclosed=1,
               records_erased=0, tool_version="1.0", db_user="default")
    row.update(over)
    return [row[c] for c in ACCESS_COLUMNS]


NEW_TABLE_ROWS = {
    "subject_erasures": (TOMBSTONE_COLUMNS, [
        _erasure(0), _erasure(1, request_id="", operator="", content_key_id=""),
        _erasure(2, records_affected=2**64 - 1,
                 tenant_id="tenant with spaces/and+plus%", request_id="a:b,c#1/2"),
        _erasure(3, erased_at=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                 db_user="naïve 😀", tool_version="")]),
    "access_log": (ACCESS_COLUMNS, [
        _access(0), _access(1, record_ids=[], user_keys=[], purpose="\u0000 nul, 12:34,,"),
        _access(2, record_ids=[uuid.uuid4(), uuid.uuid4(), uuid.uuid4()],
                user_keys=["", "b", "日本語"], actor="dr. O'Brien", records_disclosed=2**32 - 1),
        _access(3, channel="report", purpose="x" * 500, records_erased=7)]),
}


@pytest.mark.parametrize("table", list(NEW_TABLE_ROWS))
def test_python_and_sql_leaves_agree_on_the_other_tables(store: Store, keystore: LocalKeyStore,
                                                        table: str) -> None:
    schema = leaf.SCHEMAS[table]
    columns, rows = NEW_TABLE_ROWS[table]
    ledger = Ledger(store, keystore.signing_key(), schema=schema, row_columns=columns,
                    checkpoint_seconds=0)
    batch = append(store, ledger, rows)
    expr = leaf.sql_leaf_hash(schema)
    stored = store.rows(leaf.compose(
        "SELECT log_id, log_index, hex(leaf_hash), hex(<leaf>), hex(<data>) FROM <table>",
        leaf=expr, data=leaf.sql_leaf_data(schema, 1), table=table))
    assert len(stored) == len(rows)
    cols = list(batch.columns)
    written = {(r[cols.index("log_id")], r[cols.index("log_index")]): r for r in batch.rows}
    for log_id, index, stored_hash, recomputed, data in stored:
        assert stored_hash == recomputed, (table, log_id, index)
        row = written[(log_id, index)]
        values = [row[cols.index(c)] for c in schema.columns()]
        assert bytes.fromhex(data) == leaf.leaf_data(schema, 1, log_id, index, values)
        assert bytes.fromhex(data) == leaf.leaf_data_generic(schema, 1, log_id, index, values)
    assert len({h for _, _, h, _, _ in stored}) == len(rows)


def test_uuids_encode_as_lowercase_text_however_they_are_given() -> None:
    u = uuid.uuid4()
    want = str(u).encode()
    for given in (u, str(u), str(u).upper(), u.hex):
        assert leaf.value_bytes(leaf.Kind.UUID, given) == want
        assert leaf.value_bytes(leaf.Kind.UUID_ARRAY, [given, given]) == leaf.ns(want) * 2
    assert leaf.value_bytes(leaf.Kind.UUID_ARRAY, []) == b""


def test_leaf_binds_position_and_log() -> None:
    record = make_record(1)
    from genai_audit.clickhouse.writer import COLUMNS, record_row
    row = dict(zip(COLUMNS, record_row(record), strict=True))
    values = [row[c] for c in leaf.INTERACTIONS.columns(1)]
    h = leaf.compute_leaf_hash(leaf.INTERACTIONS, 1, "log-a", 5, values)
    assert h != leaf.compute_leaf_hash(leaf.INTERACTIONS, 1, "log-a", 6, values)
    assert h != leaf.compute_leaf_hash(leaf.INTERACTIONS, 1, "log-b", 5, values)
    with pytest.raises(ValueError, match="interactions v1 covers"):
        leaf.leaf_data(leaf.INTERACTIONS, 1, "log-a", 5, values[:-1])


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        leaf.value_bytes(leaf.Kind.DATETIME64, datetime(2024, 1, 1))
