-- The tamper-evident ledger covers the erasure tombstones and the disclosure accounting too
-- (docs/ledger.md): deleting, altering or forging a GDPR Art. 17 tombstone or a HIPAA
-- 164.528 access-log row is detected by `genai-audit verify` like any interaction.
-- Same columns and types as on interactions (002_ledger.sql); leaf schemas in
-- genai_audit/clickhouse/ledger/leaf.py (SUBJECT_ERASURES, ACCESS_LOG).
-- db_user keeps its DEFAULT currentUser(), but the writers now set it themselves from
-- currentUser() (the same authenticated value) so that the leaf can cover it.
ALTER TABLE subject_erasures ADD COLUMN IF NOT EXISTS log_id LowCardinality(String) DEFAULT '';
ALTER TABLE subject_erasures ADD COLUMN IF NOT EXISTS log_index UInt64 DEFAULT 0;
ALTER TABLE subject_erasures ADD COLUMN IF NOT EXISTS leaf_version UInt8 DEFAULT 0;
ALTER TABLE subject_erasures ADD COLUMN IF NOT EXISTS leaf_hash FixedString(32);
ALTER TABLE access_log ADD COLUMN IF NOT EXISTS log_id LowCardinality(String) DEFAULT '';
ALTER TABLE access_log ADD COLUMN IF NOT EXISTS log_index UInt64 DEFAULT 0;
ALTER TABLE access_log ADD COLUMN IF NOT EXISTS leaf_version UInt8 DEFAULT 0;
ALTER TABLE access_log ADD COLUMN IF NOT EXISTS leaf_hash FixedString(32)
