"""One export request, protocol-independent: auth -> decode -> tenancy -> pipeline -> sink.

Three signals: traces (the records), logs (GenAI events, held by the ``EventJoiner`` until
their span's record is built: ``processor/events.py``) and metrics (counted, dropped).

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

import logging
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
from genai_audit.exporter.gateway.decode_logs import count_metrics, decode_logs
from genai_audit.exporter.gateway.metrics import Metrics
from genai_audit.exporter.gateway.sink import Sink, Unavailable
from genai_audit.instrumentation.keys import ATTR_PROCESSED, ATTR_TENANT
from genai_audit.processor.events import EventJoiner, report_dropped
from genai_audit.processor.normalize import is_genai_span, normalize
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.record import AuditRecord, Flag

_log = logging.getLogger(__name__)

#: how long a content-less span of a tenant that sends GenAI events waits for them
EVENT_WAIT_S = 2.0

#: stages a trusted sender may have run in-process already (by Stage.name)
SKIPPABLE_WHEN_PROCESSED = frozenset({"redact"})

__all__ = ["AuthError", "ExportOutcome", "GatewayCore", "MalformedRequest", "Unavailable"]


@dataclass
class ExportOutcome:
    accepted: int
    rejected: Counter[str]
    durability: str  # "stored", "spooled" or "none" (nothing to write)
    unit: str = "span"  # what was rejected: spans, or log records

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def message(self) -> str:
        if not self.rejected:
            return ""
        reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self.rejected.items()))
        return f"{self.rejected_count} {self.unit}(s) rejected: {reasons}"


class GatewayCore:
    def __init__(self, *, auth: Authenticator, pipeline: RecordPipeline, sink: Sink,
                 metrics: Metrics, tenant_mismatch: str, max_attribute_chars: int,
                 joiner: EventJoiner | None = None,
                 event_wait_s: float = EVENT_WAIT_S) -> None:
        self.auth = auth
        self.joiner = joiner or pipeline.joiner or EventJoiner()
        self.event_wait_s = event_wait_s
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
        joined = self._join(principal, plain + processed)
        if joined and processed:  # event content was never redacted by the sender
            plain += [r for r in processed if id(r) in joined]
            processed = [r for r in processed if id(r) not in joined]
        with self._pipeline_lock:  # stages are thread-compatible, not thread-safe
            self.pipeline.run(plain)
            self.processed_pipeline.run(processed)
        records = plain + processed
        durability = self.sink.submit(records) if records else "none"
        return ExportOutcome(decoded.total - sum(rejected.values()), rejected, durability)

    def export_logs(self, principal: Principal, body: bytes, *, as_json: bool) -> ExportOutcome:
        """Decode a logs request and hold its GenAI events for their spans' records
        (``EventJoiner``); other log records are counted and dropped. Nothing is written
        here: an event's content is stored only inside its span's record.

        Raises ``MalformedRequest`` (not an OTLP logs request)."""
        self.metrics.inc("log_requests")
        try:
            decoded = decode_logs(body, self.max_attribute_chars, as_json=as_json)
        except MalformedRequest:
            self.metrics.reject("malformed")
            raise
        self.metrics.inc("received_log_records", decoded.total)
        self.metrics.inc("ignored_log_records", decoded.ignored)
        self.metrics.inc("unjoinable_events", decoded.unjoinable)
        if decoded.invalid_utf8:
            self.metrics.inc("invalid_utf8_requests")
        rejected: Counter[str] = Counter()
        kept = []
        for event, claimed in zip(decoded.events, decoded.claimed_tenants, strict=True):
            if (principal.tenant is not None and claimed not in ("", principal.tenant)
                    and self.tenant_mismatch == "reject"):
                rejected["tenant_mismatch"] += 1
                continue
            kept.append(event)
        for reason, count in rejected.items():
            self.metrics.reject(reason, count)
        self.joiner.add(_scope(principal), kept)
        self.metrics.inc("genai_events", len(kept))
        self._expire()
        return ExportOutcome(decoded.total - sum(rejected.values()), rejected, "none",
                             unit="log record")

    def export_metrics(self, principal: Principal, body: bytes, *, as_json: bool
                       ) -> ExportOutcome:
        """Check and count a metrics request; nothing of it is stored."""
        self.metrics.inc("metric_requests")
        try:
            count = count_metrics(body, as_json=as_json)
        except MalformedRequest:
            self.metrics.reject("malformed")
            raise
        self.metrics.inc("dropped_metrics", count)
        return ExportOutcome(count, Counter(), "none")

    def _join(self, principal: Principal, records: list[AuditRecord]) -> set[int]:
        """Content from held events into their span's record, before any stage runs; the
        ``id()`` of the records that received some.

        A span may reach the gateway before its events (the sender exports logs and traces
        separately). When the sender's tenant sends events, its content-less records wait
        up to ``event_wait_s`` for theirs before being built: bounded, on this request's
        thread, and the request is still acknowledged only once its records are durable."""
        scope = _scope(principal)
        joined = self.joiner.attach(scope, records)
        if self.event_wait_s > 0 and self.joiner.sends_events(scope):
            done = {id(r) for r in joined}
            waiting = [r for r in records if id(r) not in done and r.content.is_empty()]
            if waiting:
                self.metrics.inc("event_waits")
                self.joiner.wait_for_events(scope, waiting, self.event_wait_s)
                late = self.joiner.attach(scope, waiting)
                joined += late
                arrived = {id(r) for r in late}
                for record in waiting:
                    if id(record) not in arrived:
                        record.flag(Flag.EVENTS_NOT_JOINED)
        if joined:
            self.metrics.inc("joined_records", len(joined))
        self._expire()
        return {id(r) for r in joined}

    def _expire(self) -> None:
        dropped = report_dropped(_log, self.joiner)
        if dropped:
            self.metrics.inc("dropped_events", dropped)

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


def _scope(principal: Principal) -> str:
    """Events join only spans sent under the same tenant's token."""
    return principal.tenant or ""


def _processed_stages(item: DecodedSpan) -> frozenset[str]:
    value = (item.span.attributes or {}).get(ATTR_PROCESSED)
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def timed(metrics: Metrics) -> Callable[[], None]:
    """Start a request timer; call the result when the answer is sent."""
    started = time.monotonic()
    return lambda: metrics.observe("request_latency_seconds", time.monotonic() - started)
