-- Leaf version 2 of interactions (ledger/leaf.py): the content columns, which the content
-- retention TTL blanks on schedule, are covered through this digest, which it leaves alone.
-- Rows written before keep leaf version 1 (and verify as before).
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS content_digest FixedString(32) AFTER leaf_version
