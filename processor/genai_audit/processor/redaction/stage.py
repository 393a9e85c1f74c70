"""``RedactionStage``: every text slot of every record, redacted before render and commit.

A slot is any string in the record's structured content: message text parts, the older
``content`` strings, system instructions, tool-call arguments (objects or JSON strings),
tool results, and participant names; only structural keys (role, type, ids, finish
reason) are left as they are. All slots of a batch go through the engine in one call, so
the NER model sees them as one ``nlp.pipe`` stream.

Fails closed: if the engine raises, the pipeline retries record by record and withholds
what still fails (``Flag.REDACTION_FAILED``); if it runs past the policy's ``timeout_ms``
the whole batch is withheld here at once. Metadata always lands.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from genai_audit.keystore import KeyStore
from genai_audit.processor.record import NO_CONTENT, AuditRecord, Content, ContentState, Flag
from genai_audit.processor.redaction.engine import (
    RedactionEngine,
    RedactionTimeout,
    shared_engine,
)
from genai_audit.processor.redaction.operators import OperatorContext
from genai_audit.processor.redaction.placeholders import Placeholders
from genai_audit.processor.redaction.policy import PolicySet, load_policy
from genai_audit.processor.redaction.recognizers import Finding
from genai_audit.processor.redaction.redact import apply_findings

_log = logging.getLogger(__name__)

PURPOSE = "redaction"  # keystore purpose of the hmac operator's tenant secret
STRUCTURAL_KEYS = frozenset({"role", "type", "finish_reason", "id", "tool_call_id",
                             "mime_type", "modality"})

Slot = tuple[Any, Any]  # (container, key or index) holding a str


def text_slots(content: Content) -> list[Slot]:
    slots: list[Slot] = []
    for messages in (content.system_instructions, content.input_messages,
                     content.output_messages):
        slots.extend(_walk(messages))
    return slots


def _walk(node: Any) -> Iterator[Slot]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                if key not in STRUCTURAL_KEYS:
                    yield node, key
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, str):
                yield node, index
            else:
                yield from _walk(value)


class RedactionStage:
    name = "redact"
    failure_flag = Flag.REDACTION_FAILED

    def __init__(self, keys: KeyStore, policies: PolicySet | None = None,
                 engine: RedactionEngine | None = None) -> None:
        self.keys = keys
        self.policies = policies if policies is not None else load_policy()
        self._engine = engine
        self._runner: _Runner | None = None

    @property
    def engine(self) -> RedactionEngine:
        if self._engine is None:  # first batch, on the worker thread
            self._engine = shared_engine(self.policies.model)
        return self._engine

    def process(self, records: Sequence[AuditRecord]) -> None:
        work: list[tuple[AuditRecord, list[Slot]]] = []
        timeout_ms = 0
        for record in records:
            if record.content_state is ContentState.WITHHELD or record.content.is_empty():
                continue
            policy = self.policies.for_call(record.tenant_id, record.tool_name)
            if not policy.capture_content:
                record.content = NO_CONTENT
                record.content_state = ContentState.NOT_CAPTURED
                record.flag(Flag.CONTENT_NOT_CAPTURED)
                continue
            if policy.enabled:
                work.append((record, text_slots(record.content)))
                timeout_ms = max(timeout_ms, policy.timeout_ms)
        texts = [container[key] for _, slots in work for container, key in slots]
        if not texts:
            return
        languages = [self.policies.for_call(record.tenant_id, record.tool_name).languages
                     for record, slots in work for _ in slots]
        try:
            findings = self._analyze(texts, languages, timeout_ms)
        except RedactionTimeout:
            _log.error("redaction of %d record(s) timed out after %d ms; content withheld",
                       len(work), timeout_ms)
            for record, _ in work:
                record.withhold_content(Flag.REDACTION_FAILED)
            return
        position = 0
        for record, slots in work:
            self._apply(record, slots, findings[position:position + len(slots)])
            position += len(slots)

    def _apply(self, record: AuditRecord, slots: list[Slot],
               findings: list[list[Finding]]) -> None:
        policy = self.policies.for_call(record.tenant_id, record.tool_name)
        placeholders = Placeholders()
        for container, key in slots:
            placeholders.reserve(container[key])
        ctx = OperatorContext(placeholders, self._secret(record.tenant_id))
        counts: dict[str, int] = dict(record.pii_entity_counts)
        for (container, key), found in zip(slots, findings, strict=True):
            result = apply_findings(container[key], found, policy, ctx)
            container[key] = result.text
            for entity, count in result.counts.items():
                counts[entity] = counts.get(entity, 0) + count
        record.pii_entity_counts = counts
        record.has_pii_detected = bool(counts)

    def _secret(self, tenant: str) -> Callable[[], bytes]:
        return lambda: self.keys.tenant_secret(tenant, PURPOSE)

    def _analyze(self, texts: list[str], languages: list[tuple[str, ...]], timeout_ms: int
                 ) -> list[list[Finding]]:
        engine = self.engine.warm()  # model load is not part of the time-out
        if self._runner is None:
            self._runner = _Runner()
        deadline = time.monotonic() + timeout_ms / 1000
        return self._runner.run(_Job(engine, texts, languages, deadline))

    def warm(self) -> None:
        """Load the model now (idempotent)."""
        self.engine.warm()


class _Runner:
    """A thread of its own for the model's work, which gives a hard time-out: a call that
    overruns is abandoned (its result dropped) and the record fails closed."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="genai-audit-redaction", daemon=True).start()

    def run(self, job: _Job) -> list[list[Finding]]:
        self._jobs.put(job)
        if not job.done.wait(job.deadline - time.monotonic() + _GRACE_S):
            raise RedactionTimeout
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job.result = job.engine.analyze_batch(job.texts, deadline=job.deadline,
                                                      languages=job.languages)
            except BaseException as exc:  # handed to the waiting caller
                job.error = exc
            finally:
                job.done.set()


_GRACE_S = 1.0  # past the cooperative deadline, how long to wait for the engine to notice


class _Job:
    def __init__(self, engine: RedactionEngine, texts: list[str],
                 languages: list[tuple[str, ...]], deadline: float) -> None:
        self.engine, self.texts, self.languages = engine, texts, languages
        self.deadline = deadline
        self.done = threading.Event()
        self.result: list[list[Finding]] | None = None
        self.error: BaseException | None = None
