"""One export request, protocol-independent: auth -> decode -> tenancy -> pipeline -> sink.

The gRPC and HTTP servers only translate between their wire and ``GatewayCore.export``;
every decision (what is rejected and why, which tenant a record belongs to, which stages
run) is made here, once, for both.

Pipeline: the same ``RecordPipeline`` as the in-process path (``default_pipeline`` via the
exporter). A span marked ``genai_audit.processed`` by a sender trusted to set it skips the
stages it names that are skippable (redaction: it ran in the sender's process, and
redacting twice can only lose more); every other stage always runs, here, with this
gateway's keys (pseudonyms, commitments, encryption).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from genai_audit.exporter.gateway.auth import Authenticator, AuthError, Principal
from genai_audit.exporter.gateway.decode import (
    DecodedSpan,
    DecodeResult,
    MalformedRequest,
    decode_json,
    decode_protobuf,
)
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.sink import Sink, Unavailable
from genai_audit.instrumentation.keys import ATTR_PROCESSED, ATTR_TENANT
from genai_audit.processor.normalize import is_genai_span, normalize
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.record import AuditRecord, Flag

#: stages a trusted sender may have run in-process already (by Stage.name)
SKIPPABLE_WHEN_PROCESSED = frozenset({"redact"})

__all__ = ["AuthError", "ExportOutcome", "GatewayCore", "MalformedRequest", "Unavailable"]


@dataclass
class ExportOutcome:
    accepted: int
    rejected: Counter[str]
    durability: str  # "stored", "spooled" or "none" (nothing to write)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def message(self) -> str:
        if not self.rejected:
            return ""
        reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self.rejected.items()))
        return f"{self.rejected_count} span(s) rejected: {reasons}"


class GatewayCore:
    def __init__(self, *, auth: Authenticator, pipeline: RecordPipeline, sink: Sink,
                 metrics: Metrics, tenant_mismatch: str, max_attribute_chars: int) -> None:
        self.auth = auth
        self.pipeline = pipeline
        self.processed_pipeline = RecordPipeline(
            s for s in pipeline.stages if s.name not in SKIPPABLE_WHEN_PROCESSED)
        self.sink = sink
        self.metrics = metrics
        self.tenant_mismatch = tenant_mismatch
        self.max_attribute_chars = max_attribute_chars
        # One pipeline run at a time per process (threads would not run it in parallel
        # anyway: it is CPU-bound Python). CPU parallelism comes from worker processes.
        self._pipeline_lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        try:
            return self.auth.authenticate(authorization)
        except AuthError:
            self.metrics.reject("unauthenticated")
            raise

    def export(self, principal: Principal, body: bytes, *, as_json: bool) -> ExportOutcome:
        """Decode, process and durably hand over one request's spans.

        Raises ``MalformedRequest`` (nothing readable) or ``Unavailable`` (retry later).
        """
        self.metrics.inc("requests")
        decoder: Callable[[bytes, int], DecodeResult] = decode_json if as_json else \
            decode_protobuf
        try:
            decoded = decoder(body, self.max_attribute_chars)
        except MalformedRequest:
            self.metrics.reject("malformed")
            raise
        self.metrics.inc("received_spans", decoded.total)
        if decoded.invalid_utf8:
            self.metrics.inc("invalid_utf8_requests")
        if decoded.unknown_fields:
            self.metrics.inc("unknown_field_requests")
        rejected = Counter(decoded.rejected)
        plain: list[AuditRecord] = []
        processed: list[AuditRecord] = []
        for item in decoded.spans:
            if not is_genai_span(item.span):
                self.metrics.inc("ignored_spans")
                continue
            record = self._record(principal, item, rejected)
            if record is None:
                continue
            skip = _processed_stages(item) if principal.trust_processed else frozenset()
            (processed if skip & SKIPPABLE_WHEN_PROCESSED else plain).append(record)
        for reason, count in rejected.items():
            self.metrics.reject(reason, count)
        with self._pipeline_lock:  # stages are thread-compatible, not thread-safe
            self.pipeline.run(plain)
            self.processed_pipeline.run(processed)
        records = plain + processed
        durability = self.sink.submit(records) if records else "none"
        return ExportOutcome(decoded.total - sum(rejected.values()), rejected, durability)

    def _record(self, principal: Principal, item: DecodedSpan, rejected: Counter[str]
                ) -> AuditRecord | None:
        attrs = item.span.attributes or {}
        claimed = str(attrs.get(ATTR_TENANT, "")).strip()
        mismatch = principal.tenant is not None and claimed not in ("", principal.tenant)
        if mismatch and self.tenant_mismatch == "reject":
            rejected["tenant_mismatch"] += 1
            return None
        record = normalize(item.span)
        if principal.tenant is not None:
            record.tenant_id = principal.tenant  # the token decides, never the payload
            record.flags.discard(Flag.UNATTRIBUTED)
        if mismatch:
            record.flag(Flag.TENANT_REATTRIBUTED)
        if item.truncated:
            record.flag(Flag.CONTENT_TRUNCATED)
            self.metrics.inc("truncated_spans")
        return record

    def ready(self) -> bool:
        return self.sink.ready()


def _processed_stages(item: DecodedSpan) -> frozenset[str]:
    value = (item.span.attributes or {}).get(ATTR_PROCESSED)
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def timed(metrics: Metrics) -> Callable[[], None]:
    """Start a request timer; call the result when the answer is sent."""
    started = time.monotonic()
    return lambda: metrics.observe("request_latency_seconds", time.monotonic() - started)
