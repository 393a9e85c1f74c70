-- The tamper-evident ledger (docs/ledger.md). Every row belongs to one append-only Merkle
-- log (one per table, tenant and writer session) at one position; leaf_hash is the RFC 9162
-- leaf hash of the row's canonical encoding (genai_audit/clickhouse/ledger/leaf.py).
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS log_id LowCardinality(String) DEFAULT '';
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS log_index UInt64 DEFAULT 0;
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS leaf_version UInt8 DEFAULT 0;
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS leaf_hash FixedString(32);
ALTER TABLE interactions ADD INDEX IF NOT EXISTS idx_log_id log_id TYPE set(1024) GRANULARITY 4;

-- Signed tree heads. note is the authority: a C2SP tlog-checkpoint signed note (origin,
-- tree size, base64 root, Ed25519 signature). origin, tree_size and root_hash repeat it for
-- queries (the auditor report reads them).
-- leaf_hashes (32 bytes each) and record_ids (16-byte UUIDs) list, in order, what was
-- appended since the previous checkpoint (prev_size), and record_expires (8-byte unix seconds)
-- when retention may drop each, so verify can name each changed record and tell a record
-- that retention dropped from one that was deleted;
-- consistency_proof links it to that checkpoint.
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    log_id LowCardinality(String),
    origin String,
    source_table LowCardinality(String),
    tenant_id LowCardinality(String),
    tree_size UInt64,
    root_hash FixedString(32),
    prev_size UInt64,
    consistency_proof Array(FixedString(32)),
    leaf_hashes String,
    record_ids String,
    record_expires String,
    note String,
    created_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (log_id, tree_size)
