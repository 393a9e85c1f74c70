"""The pure parts of the archived-leaf check: readable leaf versions, position bookkeeping,
and how problems are printed (the store-backed behaviour is in
tests/integration/test_archive_leaves.py)."""

from __future__ import annotations

from genai_audit.cli.archive_cmd import MAX_LISTED, format_verify
from genai_audit.clickhouse.archive_leaves import _readable, _SignedLog
from genai_audit.clickhouse.archive_verify import Problem, VerifyResult
from genai_audit.clickhouse.ledger.leaf import INTERACTIONS, sql_leaf_hash


def test_only_versions_whose_columns_the_object_has_are_recomputed():
    v1 = set(INTERACTIONS.columns(1))
    assert set(_readable(INTERACTIONS, v1).versions) == {1}
    v2 = set(INTERACTIONS.columns(2))  # lacks the content columns its digest covers
    assert set(_readable(INTERACTIONS, v2).versions) == set()
    both = v1 | v2  # an object archived before migration 009: its v1 and v2 rows
    assert set(_readable(INTERACTIONS, both).versions) == {1, 2}
    every = both | set(INTERACTIONS.columns(3))
    assert set(_readable(INTERACTIONS, every).versions) == {1, 2, 3}
    assert sql_leaf_hash(_readable(INTERACTIONS, every)) == sql_leaf_hash(INTERACTIONS)
    assert "content_digest" not in sql_leaf_hash(_readable(INTERACTIONS, v1))


def test_positions_are_marked_once_within_and_beyond_the_signed_leaves():
    log = _SignedLog("interactions/acme/w", bytes(range(32)) * 2, bytearray(2))
    assert log.leaf(1) == bytes(range(32)) and log.leaf(2) is None
    assert [log.mark(p) for p in (0, 1, 0, 5, 5, 1)] == [True, True, False, True, False, False]


def test_problems_name_record_log_and_position():
    row = Problem("tenant=acme/month=2026-01/part-00001.parquet", "modified", "changed",
                  "0b9c", "interactions/acme/w", 12)
    assert str(row) == ("tenant=acme/month=2026-01/part-00001.parquet: modified: record 0b9c, "
                        "log interactions/acme/w position 12: changed")
    assert str(Problem("manifest.json", "manifest", "edited")) == "manifest.json: manifest: edited"


def test_format_verify_counts_leaves_and_caps_the_listing():
    ok = VerifyResult("s3://b/p", objects=2, rows=7, leaves=7, logs=2)
    assert format_verify(ok) == ("archive s3://b/p intact: 2 objects, 7 records, manifest "
                                 "signature ok, 7 leaves checked against the ledger's signed "
                                 "checkpoints (2 logs)")
    bad = VerifyResult("s3://b/p", leaves=500, logs=1, problems=[
        Problem("k", "not_in_ledger", "no log", str(i)) for i in range(MAX_LISTED + 5)])
    text = format_verify(bad)
    assert text.startswith(f"archive s3://b/p: {MAX_LISTED + 5} problem(s); 500 leaves")
    assert text.count("PROBLEM") == MAX_LISTED and text.endswith("... and 5 more")
