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
       ['unattributed'], []))) AS failure;

-- Budget changes (issue 21): every raise (or cut) of a tenant's or tool's monthly budget,
-- with who made it, why and the budget it replaced; append-only, like retention_policies.
-- `genai-audit budget set` writes it and applies the change to the shared limiter store.
CREATE TABLE IF NOT EXISTS budget_changes (
    tenant_id String,
    tool_name String,  -- '*': the tenant's whole budget
    budget_usd Decimal(18, 6),
    previous_usd Nullable(Decimal(18, 6)),
    changed_by String,
    reason String,
    changed_at DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, tool_name, changed_at)
