-- Retention, legal holds and the archive (issue 6). See docs/retention.md.
--
-- 1. Content can expire before metadata: content_retention_days is stamped per row (defaults
--    to the row's retention) and column TTLs blank the content columns when it passes.
--    content_state turns 'expired' then (its DEFAULT is what a column TTL writes back).
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS content_retention_days UInt16 DEFAULT retention_days AFTER retention_days;
ALTER TABLE interactions MODIFY COLUMN full_prompt_text String TTL toDateTime(event_timestamp) + toIntervalDay(content_retention_days);
ALTER TABLE interactions MODIFY COLUMN full_response_text String TTL toDateTime(event_timestamp) + toIntervalDay(content_retention_days);
ALTER TABLE interactions MODIFY COLUMN response_preview String TTL toDateTime(event_timestamp) + toIntervalDay(content_retention_days);
ALTER TABLE interactions MODIFY COLUMN content_state LowCardinality(String) DEFAULT 'expired' TTL toDateTime(event_timestamp) + toIntervalDay(content_retention_days);

-- 2. Expiry drops whole parts instead of rewriting them. Parts never span months or retention
--    classes (PARTITION BY month, retention_days), so a part expires together with its month;
--    `genai-audit maintain` applies row-precise expiry to the partitions that hold rows past due.
ALTER TABLE interactions MODIFY SETTING ttl_only_drop_parts = 1;

-- 3. Per-tenant retention policies. Append-only: every change is a row (who, when, old, new).
--    The current policy of a tenant is its latest row; tenant '*' is the store-wide default.
CREATE TABLE IF NOT EXISTS retention_policies (
    tenant_id LowCardinality(String),
    retention_days UInt16,
    content_retention_days UInt16,
    previous_retention_days Nullable(UInt16),
    previous_content_retention_days Nullable(UInt16),
    changed_by String,
    reason String,
    changed_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (tenant_id, changed_at);

-- 4. Legal holds. Append-only events: a hold is placed, later released. Active = placed and
--    not released. user_key is the pseudonym ('' = every user of the tenant); from_ts/to_ts
--    NULL = open-ended.
CREATE TABLE IF NOT EXISTS legal_holds (
    hold_id String,
    event Enum8('placed' = 1, 'released' = 2),
    tenant_id LowCardinality(String),
    user_key String,
    from_ts Nullable(DateTime64(6, 'UTC')),
    to_ts Nullable(DateTime64(6, 'UTC')),
    reason String,
    actor String,
    at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (tenant_id, hold_id, at);

-- Held records: a copy per hold, outside the TTL of interactions, partitioned by hold so a
-- release drops exactly that hold's copies. The columns follow interactions (the hold code
-- adds any column interactions gains later).
CREATE TABLE IF NOT EXISTS held_interactions
ENGINE = ReplacingMergeTree
PARTITION BY hold_id
ORDER BY (hold_id, tenant_id, event_timestamp, id)
EMPTY AS SELECT CAST('' AS String) AS hold_id, * FROM interactions;

-- 5. Archive and verification runs (append-only), for the report and for `maintain`.
CREATE TABLE IF NOT EXISTS archive_runs (
    run_id String,
    kind Enum8('archive' = 1, 'verify' = 2),
    destination String,
    started_at DateTime64(6, 'UTC'),
    finished_at DateTime64(6, 'UTC') DEFAULT now64(6),
    cutoff Nullable(DateTime64(6, 'UTC')),
    objects_written UInt32,
    objects_skipped UInt32,
    rows UInt64,
    bytes UInt64,
    ok Bool,
    problems Array(String),
    manifest_sha256 String
)
ENGINE = MergeTree
ORDER BY (started_at, run_id)
