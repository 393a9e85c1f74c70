-- One row per LLM call. Append-only: rows are inserted, never updated.
-- Retention: each row carries its own retention_days (stamped at write time); the TTL
-- drops it when it expires. retention_days is in the partition key so that rows of one
-- retention class share parts and expire together.
CREATE TABLE IF NOT EXISTS interactions (
    id UUID,
    event_timestamp DateTime64(6, 'UTC'),
    tenant_id LowCardinality(String),
    gdpr_pseudonymized_user_key String,
    session_id String,
    service_name LowCardinality(String),
    operation_name LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    response_model LowCardinality(String),
    tool_name LowCardinality(String),
    feature_name LowCardinality(String),
    region LowCardinality(String),
    data_class LowCardinality(String),
    prompt_tokens UInt32,
    response_tokens UInt32,
    cached_tokens UInt32,
    total_cost Decimal(18, 9),
    pricing_version LowCardinality(String),
    has_pii_detected Bool,
    pii_redacted_before_llm Bool,
    pii_entity_counts Map(LowCardinality(String), UInt32),
    hipaa_compliant_route Bool,
    content_state LowCardinality(String),
    prompt_hash FixedString(32),
    response_hash FixedString(32),
    response_preview String,
    full_prompt_text String,
    full_response_text String,
    request_id String,
    status_code Int32,
    error_type LowCardinality(String),
    latency_ms UInt32,
    finish_reasons Array(LowCardinality(String)),
    is_streaming Bool,
    trace_id String,
    span_id String,
    flags Array(LowCardinality(String)),
    record_version UInt16,
    retention_days UInt16 DEFAULT 365,
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX idx_user_key gdpr_pseudonymized_user_key TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_trace trace_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_request request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_tool tool_name TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY (toYYYYMM(event_timestamp), retention_days)
ORDER BY (tenant_id, event_timestamp, id)
TTL toDateTime(event_timestamp) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 10000;

-- The seed article's schema, column for column, so its auditor queries run verbatim.
-- user_id is the pseudonym: the plaintext user id is never stored. prompt_preview is the
-- column the article's PII query reads but its schema forgot.
CREATE VIEW IF NOT EXISTS llm_interaction_audit AS
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
    response_preview,
    full_prompt_text,
    full_response_text,
    request_id,
    status_code,
    latency_ms,
    substring(full_prompt_text, 1, 500) AS prompt_preview
FROM interactions;
