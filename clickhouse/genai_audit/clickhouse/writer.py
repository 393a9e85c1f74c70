"""AuditRecord -> one ``interactions`` row, inserted with a deduplication token.

``prepare`` turns records into a ``PreparedBatch`` once: rows, and (with a ledger) each
row's log position and leaf hash. ``insert`` may be called again with the same batch: its
token is fixed, so a retried or replayed batch is dropped by ClickHouse instead of
duplicated (``non_replicated_deduplication_window`` on the table). Without a ledger the
token is derived from the batch's record ids (which derive from trace and span ids).
With ``holds`` (the store owner's writer, from the composition root), every inserted row an
active legal hold covers is copied to ``held_interactions`` in the same ``insert``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from genai_audit.clickhouse.holds import ActiveHolds
from genai_audit.clickhouse.ledger.log import Ledger, PreparedBatch
from genai_audit.clickhouse.store import Store
from genai_audit.processor.record import AuditRecord

TABLE = "interactions"

COLUMNS: tuple[str, ...] = (
    "id", "event_timestamp", "tenant_id", "gdpr_pseudonymized_user_key", "session_id",
    "service_name", "operation_name", "provider", "model", "response_model", "tool_name",
    "feature_name", "region", "data_class", "prompt_tokens", "response_tokens",
    "cached_tokens", "total_cost", "pricing_version", "has_pii_detected",
    "pii_redacted_before_llm", "pii_entity_counts", "hipaa_compliant_route", "content_state",
    "content_key_id", "prompt_hash", "response_hash", "response_preview", "full_prompt_text",
    "full_response_text", "request_id", "status_code", "error_type", "latency_ms",
    "finish_reasons", "is_streaming", "trace_id", "span_id", "flags", "record_version",
    "retention_days", "content_retention_days", "cache_write_tokens", "reasoning_tokens",
    "producers", "merged_span_ids",
)


def record_row(r: AuditRecord) -> list[Any]:
    """The row's values in ``COLUMNS`` order. It shares the record's containers (read only
    from here on): every container that outlives a batch is work for the garbage collector."""
    if r.user_id is not None:
        raise ValueError(f"record {r.id} still holds a plaintext user id: pseudonymize first")
    return [
        uuid.UUID(r.id), r.event_timestamp, r.tenant_id, r.user_key, r.session_id,
        r.service_name, r.operation_name, r.provider, r.model, r.response_model, r.tool_name,
        r.feature_name, r.region, r.data_class, r.prompt_tokens, r.response_tokens,
        r.cached_tokens, r.total_cost, r.pricing_version, r.has_pii_detected,
        r.pii_redacted_before_llm, r.pii_entity_counts, r.hipaa_compliant_route,
        r.content_state.value, r.content_key_id, r.prompt_hash.ljust(32, b"\0"),
        r.response_hash.ljust(32, b"\0"), r.response_preview, r.prompt_text, r.response_text,
        r.request_id, r.status_code, r.error_type, r.latency_ms, r.finish_reasons,
        r.is_streaming, r.trace_id, r.span_id, sorted(f.value for f in r.flags) if r.flags else (),
        r.schema_version, r.retention_days, r.content_retention_days, r.cache_write_tokens,
        r.reasoning_tokens, r.producers, r.merged_span_ids,
    ]


def batch_token(records: Sequence[AuditRecord]) -> str:
    digest = hashlib.sha256()
    for tenant, record_id in sorted((r.tenant_id, r.id) for r in records):
        digest.update(f"{tenant}\0{record_id}\0".encode())
    return digest.hexdigest()


class InteractionWriter:
    """Writes finished records. Raises ``StoreError``/``StoreUnavailable`` on failure."""

    def __init__(self, store: Store, ledger: Ledger | None = None,
                 holds: ActiveHolds | None = None) -> None:
        self.store = store
        self.ledger = ledger
        self.holds = holds

    def prepare(self, records: Sequence[AuditRecord]) -> PreparedBatch:
        rows = [record_row(r) for r in records]
        if self.ledger is not None:
            return self.ledger.prepare(rows)
        return PreparedBatch(TABLE, COLUMNS, rows, batch_token(records), ())

    def insert(self, batch: PreparedBatch) -> None:
        """Insert a prepared batch; safe to call again with the same batch."""
        if not batch.rows:
            return
        batch.insert_into(self.store)
        if self.holds is not None:
            self.holds.protect(batch.columns, batch.rows)

    def committed(self, batch: PreparedBatch) -> None:
        if self.ledger is not None:
            self.ledger.committed(batch)

    def failed(self, batch: PreparedBatch) -> None:
        if self.ledger is not None:
            self.ledger.failed(batch)

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Prepare, insert once, commit (no retries: see ``ClickHouseSpanExporter``)."""
        if not records:
            return
        batch = self.prepare(records)
        try:
            self.insert(batch)
        except Exception:
            self.failed(batch)
            raise
        self.committed(batch)
