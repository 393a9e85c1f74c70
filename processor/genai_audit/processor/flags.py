"""``Flag``: what was wrong or notable about a record, stored in the ``flags`` column.

A module of its own so the content parser (``content``) and the record (``record``) can
both raise flags without importing each other.
"""

from __future__ import annotations

import enum


class Flag(enum.StrEnum):
    """What was wrong or notable about a record. Stored in the ``flags`` column."""

    UNATTRIBUTED = "unattributed"  # no tenant in baggage: a control failure
    MALFORMED_INPUT_MESSAGES = "malformed_input_messages"
    MALFORMED_OUTPUT_MESSAGES = "malformed_output_messages"
    MISSING_USAGE = "missing_usage"
    MISSING_START_TIME = "missing_start_time"  # the span's end (or read) time stands in
    INVALID_UTF8 = "invalid_utf8"
    UNKNOWN_MODEL = "unknown_model"  # cost is 0 because no price is known
    CONTENT_TRUNCATED = "content_truncated"
    CONTENT_NOT_CAPTURED = "content_not_captured"
    CONTENT_WITHHELD = "content_withheld"  # a stage failed closed
    REDACTION_FAILED = "redaction_failed"
    ENCRYPTION_FAILED = "encryption_failed"
    PSEUDONYMIZATION_FAILED = "pseudonymization_failed"  # keystore failed: no user key
    SUBJECT_ERASED = "subject_erased"  # started before its user's GDPR erasure: no content
    NO_USER = "no_user"
    ROUTE_REROUTED = "route_rerouted"  # the guard sent the call to the region's endpoint
    ROUTE_REFUSED = "route_refused"  # the guard refused a call its region may not make
    MERGED_SPANS = "merged_spans"  # several instrumentations' spans of one call, one record
    RATE_LIMITED = "rate_limited"  # the guard refused the call: a rate limit (status 429)
    BUDGET_EXCEEDED = "budget_exceeded"  # the guard refused the call: budget spent (429)
    LIMITER_UNAVAILABLE = "limiter_unavailable"  # the limits' store failed: a control failure
    BUDGET_ALARM = "budget_alarm"  # first call after the month's spend crossed a threshold
    TENANT_REATTRIBUTED = "tenant_reattributed"  # gateway: span claimed another tenant
    # gateway: its tenant sends GenAI log events, but none came for this content-less span
    # within the wait; events arriving later are dropped, never joined
    EVENTS_NOT_JOINED = "events_not_joined"
