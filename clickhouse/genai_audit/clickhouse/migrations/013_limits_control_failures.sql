-- Rate limits and budgets (issue 21): a call made while the limiter's shared store (Redis)
-- was unavailable and the limits failed open was not limited; it is a control failure too,
-- listed by audit_control_failures as limiter_unavailable. (Refusals, flagged rate_limited
-- or budget_exceeded, are the control working: they are not listed here.)
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
                           'pseudonymization_failed', 'content_withheld', 'unattributed',
                           'limiter_unavailable'),
                flags),
    if(tenant_id = '_unattributed' AND NOT has(flags, 'unattributed'),
       ['unattributed'], []))) AS failure
