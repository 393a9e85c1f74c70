-- A record whose pseudonym could not be assigned (keystore failure: stored without a user
-- key) is a control failure too: audit_control_failures lists it as pseudonymization_failed.
CREATE OR REPLACE VIEW audit_control_failures AS
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
                           'pseudonymization_failed', 'content_withheld', 'unattributed'),
                flags),
    if(tenant_id = '_unattributed' AND NOT has(flags, 'unattributed'),
       ['unattributed'], []))) AS failure
