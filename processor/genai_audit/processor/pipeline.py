"""The record pipeline: spans in, finished audit records out.

``normalize`` turns each ended GenAI span into an ``AuditRecord``; the stages then run
in order over the whole batch. A stage that raises is retried record by record and the
records it still fails on are withheld (content dropped, metadata kept, flagged): the
pipeline fails closed and never loses a record.

Before the stages, an optional ``CallMerger`` (``merge``) folds the spans of one LLM call,
from several instrumentations, into one record (``processor/merge.py``); then an optional
``EventJoiner`` (``join``) gives each record the content of its span's GenAI log events
(``processor/events.py``), so the stages redact and encrypt it with the rest.

Stage order (each issue adds its stage at its place)::

    [merge] -> [join events] -> pseudonymize -> redact -> render -> commit -> encrypt -> price
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from opentelemetry.sdk.trace import ReadableSpan

from genai_audit.processor.events import EventJoiner, report_dropped
from genai_audit.processor.normalize import is_genai_span, normalize
from genai_audit.processor.record import AuditRecord, Flag
from genai_audit.safelog import log_failure

if TYPE_CHECKING:
    from genai_audit.processor.merge import CallMerger

_log = logging.getLogger(__name__)


class Stage(Protocol):
    """One step of the pipeline. ``process`` mutates the records in place.

    Contract: a stage is atomic per call. If ``process`` raises, it must not have changed
    any record (compute first, assign last), because the pipeline then retries the same
    records one by one and a half-applied stage would run twice on some of them.
    """

    name: str
    failure_flag: Flag  # flagged on a record the stage could not process

    def process(self, records: Sequence[AuditRecord]) -> None: ...


class RecordPipeline:
    """Normalize spans and run the stages. Thread-compatible: one caller at a time."""

    def __init__(self, stages: Iterable[Stage], merger: CallMerger | None = None,
                 joiner: EventJoiner | None = None) -> None:
        self.stages: list[Stage] = list(stages)
        self.merger = merger
        self.joiner = joiner

    def build(self, spans: Iterable[ReadableSpan], scope: str = "") -> list[AuditRecord]:
        records = [r for r in map(_normalized, spans) if r is not None]
        if self.merger is not None and records:
            records = _merged(self.merger, records)
        if self.joiner is not None:
            self.joiner.attach(scope, records)
            report_dropped(_log, self.joiner)
        self.run(records)
        return records

    def run(self, records: list[AuditRecord]) -> None:
        for stage in self.stages:
            if records:
                _run_stage(stage, records)


def _normalized(span: ReadableSpan) -> AuditRecord | None:
    """The span's record; None for a non-GenAI span. ``normalize`` repairs and flags bad
    attributes; a span it still cannot read at all is skipped, logged with its ids (never
    its content), so the rest of its batch lands."""
    try:
        return normalize(span) if is_genai_span(span) else None
    except Exception as exc:
        context = span.context
        ids = (f"{context.trace_id:032x}/{context.span_id:016x}" if context is not None
               else "without ids")
        _log.error("span %s could not be read (%s); skipped, the rest of its batch goes on",
                   ids, type(exc).__name__)
        return None


def _merged(merger: CallMerger, records: list[AuditRecord]) -> list[AuditRecord]:
    """The merger's output; the records as they are if it fails (two rows for one call is
    better than none)."""
    try:
        return merger.merge(records)
    except Exception as exc:
        log_failure(_log, f"merging the spans of a batch of {len(records)} failed; written "
                          "unmerged", exc, logging.WARNING)
        return records


def _run_stage(stage: Stage, records: Sequence[AuditRecord]) -> None:
    try:
        stage.process(records)
        return
    except Exception as exc:
        log_failure(_log, f"stage {stage.name} failed on a batch of {len(records)}; retrying "
                          "one by one", exc, logging.WARNING)
    for record in records:
        try:
            stage.process([record])
        except Exception as exc:
            # Never log the exception text: it may quote content.
            _log.error("stage %s failed on record %s (%s); content withheld",
                       stage.name, record.id, type(exc).__name__)
            record.withhold_content(stage.failure_flag)
