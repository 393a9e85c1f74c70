-- Views for the common auditor questions (docs/auditor-cookbook.md).
-- Plain views over interactions: no second copy of the data, always current, and the
-- primary key (tenant_id, event_timestamp) still prunes when a query filters on them.
-- user_key is the keyed pseudonym (gdpr_pseudonymized_user_key): `genai-audit pseudonym`
-- turns a user id into it for whoever holds the keystore.

-- SOC2 activity: the seed report's grouping (day x tenant x tool x user x model).
CREATE VIEW IF NOT EXISTS audit_daily_activity AS
SELECT
    toDate(event_timestamp) AS day,
    tenant_id,
    tool_name,
    gdpr_pseudonymized_user_key AS user_key,
    model,
    count() AS interactions,
    sum(prompt_tokens) AS prompt_tokens_total,
    sum(response_tokens) AS response_tokens_total,
    sum(prompt_tokens + response_tokens) AS total_tokens,
    sum(total_cost) AS cost
FROM interactions
GROUP BY day, tenant_id, tool_name, user_key, model;

-- Every interaction in which PII was detected, without its content.
CREATE VIEW IF NOT EXISTS audit_pii_interactions AS
SELECT
    id,
    event_timestamp,
    tenant_id,
    gdpr_pseudonymized_user_key AS user_key,
    session_id,
    tool_name,
    feature_name,
    model,
    arraySort(mapKeys(pii_entity_counts)) AS entity_types,
    pii_entity_counts,
    pii_redacted_before_llm,
    content_state,
    request_id,
    trace_id
FROM interactions
WHERE has_pii_detected;

-- Cost per month and attribution dimension.
CREATE VIEW IF NOT EXISTS audit_cost_monthly AS
SELECT
    toStartOfMonth(event_timestamp) AS month,
    tenant_id,
    tool_name,
    feature_name,
    model,
    count() AS interactions,
    sum(prompt_tokens + response_tokens) AS tokens,
    sum(total_cost) AS cost,
    countIf(has(flags, 'unknown_model')) AS unpriced_calls
FROM interactions
GROUP BY month, tenant_id, tool_name, feature_name, model;

-- One row per record and control failure it carries (a record can carry several).
CREATE VIEW IF NOT EXISTS audit_control_failures AS
SELECT
    id,
    event_timestamp,
    tenant_id,
    tool_name,
    model,
    failure
FROM interactions
ARRAY JOIN arrayDistinct(arrayConcat(
    arrayFilter(f -> f IN ('unknown_model', 'redaction_failed', 'encryption_failed',
                           'content_withheld', 'unattributed'), flags),
    if(tenant_id = '_unattributed' AND NOT has(flags, 'unattributed'),
       ['unattributed'], []))) AS failure;

-- Interactions that carried PHI (data class phi or hipaa) and the route they took.
CREATE VIEW IF NOT EXISTS audit_phi_interactions AS
SELECT
    id,
    event_timestamp,
    tenant_id,
    gdpr_pseudonymized_user_key AS user_key,
    tool_name,
    region,
    provider,
    model,
    hipaa_compliant_route,
    content_state
FROM interactions
WHERE lower(data_class) IN ('phi', 'hipaa')
