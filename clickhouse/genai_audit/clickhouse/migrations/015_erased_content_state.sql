-- An erased data subject's records read as erased (issue 17): erasure is crypto-shredding,
-- so the append-only row keeps content_state = 'encrypted' while its key is gone; the views
-- auditors read said "encrypted" for content nobody can ever decrypt. content_state in the
-- views is now 'erased' for rows of a subject in subject_erasures, else the stored state.

CREATE OR REPLACE VIEW audit_pii_interactions AS
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
    if((tenant_id, gdpr_pseudonymized_user_key) IN (
            SELECT tenant_id, gdpr_pseudonymized_user_key FROM subject_erasures),
        'erased', content_state) AS content_state,
    request_id,
    trace_id
FROM interactions
WHERE has_pii_detected;

CREATE OR REPLACE VIEW audit_phi_interactions AS
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
    if((tenant_id, gdpr_pseudonymized_user_key) IN (
            SELECT tenant_id, gdpr_pseudonymized_user_key FROM subject_erasures),
        'erased', content_state) AS content_state
FROM interactions
WHERE lower(data_class) IN ('phi', 'hipaa');
