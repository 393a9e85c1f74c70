"""Baggage keys of the compliance context, and the span attributes they are stamped as.

The same key is used for the W3C baggage entry and the span attribute, so the context
reads the same in a span exported over OTLP from any language.
"""

from __future__ import annotations

ATTR_TENANT = "tenant.id"
ATTR_USER = "enduser.id"
ATTR_SESSION = "session.id"
ATTR_TOOL = "genai_audit.tool"
ATTR_FEATURE = "genai_audit.feature"
ATTR_REGION = "genai_audit.region"
ATTR_DATA_CLASS = "genai_audit.data_class"

#: audit_context() argument -> baggage key
CONTEXT_KEYS: dict[str, str] = {
    "tenant_id": ATTR_TENANT,
    "user_id": ATTR_USER,
    "session_id": ATTR_SESSION,
    "tool_name": ATTR_TOOL,
    "feature_name": ATTR_FEATURE,
    "region": ATTR_REGION,
    "data_class": ATTR_DATA_CLASS,
}

BAGGAGE_KEYS: tuple[str, ...] = tuple(CONTEXT_KEYS.values())

# Set by the pre-LLM guard (instrumentation/guard.py) on the span of a guarded call, through
# a context value stamped at span start (context.stamp_baggage): never propagated as baggage.
ATTR_PII_REDACTED_BEFORE_LLM = "genai_audit.pii_redacted_before_llm"
ATTR_GUARD_ENTITY_COUNTS = "genai_audit.guard.entity_counts"  # JSON {"PERSON": 2, ...}
ATTR_ROUTE_DECISION = "genai_audit.route.decision"  # allowed | rerouted | refused | unrestricted
ATTR_ROUTE_ENDPOINT = "genai_audit.route.endpoint"  # base URL the call was (or would be) sent to
ATTR_HIPAA_COMPLIANT_ROUTE = "genai_audit.hipaa_compliant_route"
# rate limits and budgets (instrumentation/limits): a refused call's reason, and what an
# admitted call's record must say (comma-separated: limiter_unavailable, budget_alarm)
ATTR_LIMIT_REFUSED = "genai_audit.limit.refused"  # rate_limited | budget_exceeded | ...
ATTR_LIMIT_FLAGS = "genai_audit.limit.flags"

#: Marker on a span whose content genai-audit already processed in-process (value: the
#: comma-separated stage names it ran, e.g. "redact"). The gateway skips those stages, and
#: only for senders whose token is trusted to set it (``trust_processed`` in the tokens file).
ATTR_PROCESSED = "genai_audit.processed"
