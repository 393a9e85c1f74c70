"""``ProcessedSpanExporter``: redact in the service, then export OTLP marked as processed.

For Python services that send their spans to the collector tier (OTLP) but must not let
unredacted content leave the process. Wraps any span exporter (typically the OTLP one):

* GenAI spans are normalized and the in-process stages run on the record (the stages of
  ``default_pipeline`` that a gateway may skip: redaction);
* the span is re-emitted as a copy (ended spans are immutable) whose content attributes
  hold the processed content (``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
  ``gen_ai.system_instructions`` as canonical JSON), whose legacy indexed content keys and
  ``gen_ai.*`` content events are removed, and which carries
  ``genai_audit.processed = "<stage names>"``;
* a stage that fails closed withholds the content: the copy carries no content at all.

The gateway skips those stages for senders trusted to set the marker (``trust_processed``
in its tokens file) and runs every other stage (pseudonyms, commitments, encryption) with
its own keys. With no skippable stage in the pipeline, spans pass through unchanged and
unmarked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from genai_audit.exporter.gateway.core import SKIPPABLE_WHEN_PROCESSED
from genai_audit.instrumentation.keys import ATTR_PROCESSED
from genai_audit.processor.normalize import is_genai_span, normalize
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.record import AuditRecord, ContentState
from genai_audit.processor.render import canonical_json

_CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages",
                 "gen_ai.system_instructions")
_LEGACY_CONTENT = re.compile(r"^gen_ai\.(prompt|completion)\.\d+\.")


class ProcessedSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, pipeline: RecordPipeline) -> None:
        self.inner = inner
        self.stages = RecordPipeline(
            s for s in pipeline.stages if s.name in SKIPPABLE_WHEN_PROCESSED)
        self.marker = ",".join(s.name for s in self.stages.stages)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.marker:
            return self.inner.export(spans)
        genai = [s for s in spans if is_genai_span(s)]
        records = [normalize(s) for s in genai]
        self.stages.run(records)
        processed = {id(span): _copy(span, record, self.marker)
                     for span, record in zip(genai, records, strict=True)}
        return self.inner.export([processed.get(id(s), s) for s in spans])

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


def _copy(span: ReadableSpan, record: AuditRecord, marker: str) -> ReadableSpan:
    attrs: dict[str, Any] = {k: v for k, v in (span.attributes or {}).items()
                             if k not in _CONTENT_KEYS and not _LEGACY_CONTENT.match(k)}
    if record.content_state is not ContentState.WITHHELD:
        content = record.content
        for key, messages in zip(_CONTENT_KEYS, (content.input_messages,
                                                 content.output_messages,
                                                 content.system_instructions), strict=True):
            if messages:
                attrs[key] = canonical_json(messages)
    attrs[ATTR_PROCESSED] = marker
    events = [e for e in span.events if not e.name.startswith("gen_ai.")]
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=attrs, events=events, links=span.links, kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)
