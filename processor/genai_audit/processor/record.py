"""The audit record: what one LLM call becomes on its way from span to row.

An ``AuditRecord`` is built from an ended span by ``normalize`` and then handed,
in batches, through the pipeline's stages (redaction, commitments, encryption,
cost, ledger). Stages mutate the record; the ClickHouse writer turns the final
record into one ``interactions`` row. Nothing here touches the network or the store.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from genai_audit.processor.content import NO_CONTENT as NO_CONTENT
from genai_audit.processor.content import Content as Content
from genai_audit.processor.flags import Flag as Flag

RECORD_SCHEMA_VERSION = 1
UNATTRIBUTED_TENANT = "_unattributed"
NO_ENTITY_COUNTS: Mapping[str, int] = MappingProxyType({})  # shared: records replace, never mutate


def _no_entity_counts() -> Mapping[str, int]:
    return NO_ENTITY_COUNTS


class ContentState(enum.StrEnum):
    """How the content columns of a row are to be read."""

    PLAINTEXT = "plaintext"  # redacted text as stored (no encryption stage ran)
    ENCRYPTED = "encrypted"
    WITHHELD = "withheld"  # fail-closed: content dropped, metadata kept
    NOT_CAPTURED = "not_captured"  # capture off, or the span carried no content
    EXPIRED = "expired"  # content retention passed: the column TTL blanked the content


@dataclass(slots=True)
class AuditRecord:
    """One LLM call, as the audit trail will hold it."""

    id: str  # UUID, derived from trace and span id so replays are idempotent
    trace_id: str
    span_id: str
    event_timestamp: datetime  # span start, UTC
    tenant_id: str
    # plaintext, in memory only; the pseudonym stage clears it. Never in a repr (nor the
    # content below): a record's repr can end up in a log or a traceback.
    user_id: str | None = field(repr=False)
    session_id: str
    tool_name: str
    feature_name: str
    region: str
    data_class: str
    service_name: str
    operation_name: str
    provider: str
    model: str
    response_model: str
    request_id: str
    prompt_tokens: int
    response_tokens: int
    cached_tokens: int  # cache reads (input tokens served from the provider's prompt cache)
    latency_ms: int
    status_code: int
    error_type: str
    finish_reasons: tuple[str, ...]
    is_streaming: bool
    content: Content
    cache_write_tokens: int = 0  # input tokens written to the provider's prompt cache
    reasoning_tokens: int = 0  # output tokens spent on reasoning (part of response_tokens)
    # instrumentation scope names of the span(s) this record was built from (several: merged)
    producers: tuple[str, ...] = ()
    merged_span_ids: tuple[str, ...] = ()  # the other spans of the same call folded in here
    parent_span_id: str = ""  # in memory only: the merge stage's parent/child identity
    end_ns: int = 0  # in memory only: the span's end (ns since the epoch; 0: unknown)
    user_key: str = ""  # gdpr_pseudonymized_user_key (keyed HMAC)
    total_cost: Decimal = Decimal(0)
    pricing_version: str = ""
    content_state: ContentState = ContentState.PLAINTEXT
    # serialized content as stored (after redaction / encryption)
    prompt_text: str = field(default="", repr=False)
    response_text: str = field(default="", repr=False)
    response_preview: str = field(default="", repr=False)
    content_key_id: str = ""  # id of the subject data key that encrypted the content
    prompt_hash: bytes = b""
    response_hash: bytes = b""
    has_pii_detected: bool = False
    pii_redacted_before_llm: bool = False
    pii_entity_counts: Mapping[str, int] = field(default_factory=_no_entity_counts)
    hipaa_compliant_route: bool = False
    retention_days: int = 365
    content_retention_days: int = 365  # content columns expire after this (<= retention_days)
    flags: set[Flag] = field(default_factory=set)
    schema_version: int = RECORD_SCHEMA_VERSION

    def flag(self, flag: Flag) -> None:
        self.flags.add(flag)

    def withhold_content(self, reason: Flag) -> None:
        """Fail closed: drop every content field, keep the metadata, say why."""
        self.content = NO_CONTENT
        self.prompt_text = self.response_text = self.response_preview = ""
        self.content_state = ContentState.WITHHELD
        self.flags.update({reason, Flag.CONTENT_WITHHELD})
