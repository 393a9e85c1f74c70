-- Issue 5: content encrypted per data subject, GDPR Art. 17 erasure tombstones,
-- HIPAA 164.528 disclosure accounting. All tables append-only: rows are inserted, never
-- updated or deleted, and carry a stable UUID so the ledger can cover them.

-- Which subject data key (DEK) sealed a row's content; '' for rows stored without content.
ALTER TABLE interactions ADD COLUMN IF NOT EXISTS content_key_id String DEFAULT '' AFTER content_state;

-- Records per data subject, kept by ClickHouse at insert time, so that an erasure counts
-- the records it affects without scanning them (erasure latency stays flat).
ALTER TABLE interactions ADD PROJECTION IF NOT EXISTS subject_counts (
    SELECT tenant_id, gdpr_pseudonymized_user_key, count()
    GROUP BY tenant_id, gdpr_pseudonymized_user_key
);

-- One row per erasure. PII-free by construction: the pseudonym (unlinkable once the
-- keystore row is gone), a reason code, the request and operator ids. No user id.
CREATE TABLE IF NOT EXISTS subject_erasures (
    erasure_id UUID,
    erased_at DateTime64(6, 'UTC'),
    tenant_id LowCardinality(String),
    gdpr_pseudonymized_user_key String,
    content_key_id String,
    request_id String,
    records_affected UInt64,
    operator String,
    reason LowCardinality(String),
    tool_version LowCardinality(String),
    db_user LowCardinality(String) DEFAULT currentUser()
)
ENGINE = MergeTree
ORDER BY (tenant_id, erased_at, erasure_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per read of decrypted content (per tenant touched): who, when, why, which records.
-- actor is who the reader says they are; db_user is the store account that wrote the row,
-- authenticated by ClickHouse.
CREATE TABLE IF NOT EXISTS access_log (
    access_id UUID,
    accessed_at DateTime64(6, 'UTC'),
    tenant_id LowCardinality(String),
    actor String,
    purpose String,
    channel LowCardinality(String),
    record_ids Array(UUID),
    user_keys Array(String),
    records_disclosed UInt32,
    records_erased UInt32,
    tool_version LowCardinality(String),
    db_user LowCardinality(String) DEFAULT currentUser(),
    INDEX idx_user_keys user_keys TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
ORDER BY (tenant_id, accessed_at, access_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- The seed view, unchanged column for column, except that content is never readable
-- through it: content is ciphertext at rest and is read only through `genai-audit show`,
-- which logs the disclosure. Content columns are NULL, or the erasure notice for rows of
-- an erased data subject.
DROP VIEW IF EXISTS llm_interaction_audit;

CREATE VIEW llm_interaction_audit AS
SELECT
    id,
    event_timestamp,
    tenant_id,
    gdpr_pseudonymized_user_key AS user_id,
    session_id,
    provider,
    model,
    lower(hex(prompt_hash)) AS prompt_hash,
    prompt_tokens,
    response_tokens,
    total_cost,
    tool_name,
    feature_name,
    has_pii_detected,
    pii_redacted_before_llm,
    gdpr_pseudonymized_user_key,
    hipaa_compliant_route,
    lower(hex(response_hash)) AS response_hash,
    if((tenant_id, gdpr_pseudonymized_user_key) IN (
            SELECT tenant_id, gdpr_pseudonymized_user_key FROM subject_erasures),
        CAST('[DATA ERASED PER GDPR ARTICLE 17]', 'Nullable(String)'),
        CAST(NULL, 'Nullable(String)')) AS response_preview,
    response_preview AS full_prompt_text,
    response_preview AS full_response_text,
    request_id,
    status_code,
    latency_ms,
    response_preview AS prompt_preview
FROM interactions;
