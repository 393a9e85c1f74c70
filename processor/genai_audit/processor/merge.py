"""One row per LLM call: the spans of one call, from several instrumentations, merged.

Two instrumentations of the same client (the official ``openai-v2`` next to Traceloop's
``openai``; the anthropic SDK's own tracing next to Traceloop's ``anthropic``) each end a
span for the same call. Left alone that is two rows and the cost counted twice.

The identity of a call (``same_call``): two records are one call when

* they carry the same provider response id (``gen_ai.response.id``), their spans overlap in
  time (to the microsecond: back-to-back calls of a server that reuses ids do not), and
  they do not name two different tenants; or
* one's span is the other's parent (same trace), they name the same model and operation (or
  one names none), the child started while the parent was open, and the parent has no
  other such child (an agent span over two LLM calls is not a call).

Nothing else merges: two calls without a response id and without a parent/child link stay
two rows, even with the same model at the same time.

A merged record keeps the richest content (the most messages, then the most text), counts
usage once (each token count is the smallest non-zero one reported: the spans read the
same response, and the way instrumentations get a count wrong is by inflating it, e.g.
Traceloop anthropic adding ``message_start``'s output count to the final one on a stream),
takes every field the others fill and it lacks (user, session, finish reasons...), and is
flagged
``merged_spans`` with ``producers`` naming the instrumentation scopes and
``merged_span_ids`` the spans folded in.

``CallMerger`` merges inside each batch and remembers the calls it let through (a window
bounded in entries and in time, ``window_s`` on the injected clock); a late span of a call
already let through (its partner was in an earlier batch and may already be written) is
dropped, not written as a second row with a second cost, logged by its ids and counted in
``stats``. Across batches the parent/child rule has no sibling count: a GenAI parent of the
same model and operation whose one child went out earlier is taken as that call. Pure
memory, per process: no query to the store (two gateway workers do not share it).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.processor.record import UNATTRIBUTED_TENANT, AuditRecord, Flag

_log = logging.getLogger(__name__)
SLACK = timedelta(milliseconds=50)  # parent/child: clock skew between the two spans
_ABSENT_MODELS = frozenset({"", "unknown"})
_NO_OPERATION = frozenset({""})


@dataclass(frozen=True)
class _Seen:
    tenant: str
    start: datetime
    end: datetime
    trace_id: str
    model: str
    operation: str
    seen_at: float


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _end(record: AuditRecord) -> datetime:
    if record.end_ns:
        return _EPOCH + timedelta(microseconds=record.end_ns // 1000)
    return record.event_timestamp + timedelta(milliseconds=record.latency_ms)


def _overlap(a: AuditRecord, b: AuditRecord) -> bool:
    """Strictly: a span that starts the microsecond another ends is the next call."""
    return a.event_timestamp < _end(b) and b.event_timestamp < _end(a)


def _least(a: int, b: int) -> int:
    """The smaller of two counts, 0 meaning "not reported"."""
    return min(a, b) if a and b else a or b


def _tenants_agree(a: str, b: str) -> bool:
    return a == b or UNATTRIBUTED_TENANT in (a, b)


def _agree(a: str, b: str, absent: frozenset[str]) -> bool:
    return a == b or a in absent or b in absent


def _models_agree(a: AuditRecord, b: AuditRecord) -> bool:
    return (_agree(a.model, b.model, _ABSENT_MODELS)
            and _agree(a.operation_name, b.operation_name, _NO_OPERATION))


def _within(child: AuditRecord, parent: AuditRecord) -> bool:
    """The child started while its parent was open. Its end is not compared: the outer
    instrumentation may end its span when ``create`` returns a stream the inner one wraps,
    and the inner span then ends with the stream, much later."""
    return parent.event_timestamp - SLACK <= child.event_timestamp <= _end(parent) + SLACK


def same_call(a: AuditRecord, b: AuditRecord) -> bool:
    """True when ``a`` and ``b`` are spans of one LLM call (see the module doc)."""
    if a.request_id and a.request_id == b.request_id:
        return _overlap(a, b) and _tenants_agree(a.tenant_id, b.tenant_id)
    if a.trace_id != b.trace_id or not _models_agree(a, b):
        return False
    if a.parent_span_id and a.parent_span_id == b.span_id:
        return _within(a, b)
    if b.parent_span_id and b.parent_span_id == a.span_id:
        return _within(b, a)
    return False


def _weight(record: AuditRecord) -> tuple[int, int, int, int, str]:
    """Which record of a call leads: the most messages, the most text, then usage, then the
    outer span, then the smallest span id (deterministic: a replayed group merges the same
    way)."""
    messages, chars = record.content.size()
    return (-messages, -chars, -(record.prompt_tokens + record.response_tokens),
            0 if not record.parent_span_id else 1, record.span_id)


_FILLED = ("session_id", "feature_name", "region", "data_class", "response_model",
           "request_id", "error_type")


def merge_group(records: Sequence[AuditRecord]) -> AuditRecord:
    """One record for the spans of one call (``records``: two or more of them)."""
    ordered = sorted(records, key=_weight)
    lead, others = ordered[0], ordered[1:]
    for other in others:
        if lead.user_id is None and other.user_id is not None:
            lead.user_id = other.user_id
            lead.flags.discard(Flag.NO_USER)
        if lead.tenant_id == UNATTRIBUTED_TENANT and other.tenant_id != UNATTRIBUTED_TENANT:
            lead.tenant_id = other.tenant_id
            lead.flags.discard(Flag.UNATTRIBUTED)
        for name in _FILLED:
            if not getattr(lead, name):
                setattr(lead, name, getattr(other, name))
        if lead.tool_name == "unspecified":
            lead.tool_name = other.tool_name
        if lead.model in _ABSENT_MODELS:
            lead.model = other.model
        if lead.provider == "unknown":
            lead.provider = other.provider
        if not lead.finish_reasons:
            lead.finish_reasons = other.finish_reasons
        lead.is_streaming = lead.is_streaming or other.is_streaming
        lead.status_code = lead.status_code if lead.status_code else other.status_code
        lead.prompt_tokens = _least(lead.prompt_tokens, other.prompt_tokens)
        lead.response_tokens = _least(lead.response_tokens, other.response_tokens)
        lead.cached_tokens = _least(lead.cached_tokens, other.cached_tokens)
        lead.cache_write_tokens = _least(lead.cache_write_tokens, other.cache_write_tokens)
        lead.reasoning_tokens = _least(lead.reasoning_tokens, other.reasoning_tokens)
        if Flag.MISSING_USAGE not in other.flags:
            lead.flags.discard(Flag.MISSING_USAGE)
        lead.flags |= other.flags - {Flag.MISSING_USAGE, Flag.NO_USER, Flag.UNATTRIBUTED}
        if lead.user_id is None:
            lead.flags.add(Flag.NO_USER)
    start = min(r.event_timestamp for r in ordered)
    end = max(_end(r) for r in ordered)
    lead.event_timestamp = start
    lead.end_ns = (end - _EPOCH) // timedelta(microseconds=1) * 1000
    lead.latency_ms = round((end - start) / timedelta(milliseconds=1))
    lead.producers = tuple(sorted({p for r in ordered for p in r.producers}))
    lead.merged_span_ids = tuple(sorted(
        f"{r.trace_id}:{r.span_id}" for r in others)) + lead.merged_span_ids
    lead.flags.add(Flag.MERGED_SPANS)
    return lead


def merge_batch(records: Sequence[AuditRecord]) -> list[AuditRecord]:
    """The batch with the spans of each call merged into one record, in batch order.
    Linear in the batch: candidates are found by response id and by span id, never by
    comparing every pair."""
    by_response: dict[str, list[int]] = {}
    by_span: dict[tuple[str, str], int] = {}
    for i, r in enumerate(records):
        if r.request_id:
            by_response.setdefault(r.request_id, []).append(i)
        by_span[(r.trace_id, r.span_id)] = i
    if len(by_response) == sum(1 for r in records if r.request_id) and not any(
            r.parent_span_id and (r.trace_id, r.parent_span_id) in by_span for r in records):
        return list(records)  # the usual batch: nothing to merge, nothing copied
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        if same_call(records[i], records[j]):
            parent[find(i)] = find(j)

    for indexes in by_response.values():
        for k, i in enumerate(indexes):
            for j in indexes[k + 1:]:
                union(i, j)
    children: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        up = by_span.get((r.trace_id, r.parent_span_id)) if r.parent_span_id else None
        if up is not None:
            children.setdefault(up, []).append(i)
    for j, kids in children.items():
        if len(kids) == 1:  # a parent over two calls is not a call of its own
            union(kids[0], j)
    groups: dict[int, list[AuditRecord]] = {}
    for i, r in enumerate(records):
        groups.setdefault(find(i), []).append(r)
    out: list[AuditRecord] = []
    for i in range(len(records)):  # in batch order, each group where its first record was
        group = groups.pop(find(i), None)
        if group is not None:
            out.append(group[0] if len(group) == 1 else merge_group(group))
    return out


class CallMerger:
    """``merge_batch`` plus a memory of the calls let through, so a span of a call whose
    partner went out in an earlier batch is dropped rather than written twice.

    Bounded: at most ``capacity`` calls, each kept ``window_s`` seconds (clock time).
    Thread-safe (the gateway's workers may share one)."""

    name = "merge"

    def __init__(self, capacity: int = 100_000, window_s: float = 300.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.capacity, self.window_s, self._clock = capacity, window_s, clock
        self._responses: OrderedDict[str, _Seen] = OrderedDict()
        self._spans: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        # parent span -> its one child let through (None: two or more, not one call)
        self._children: OrderedDict[tuple[str, str], _Seen | None] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"merged": 0, "late_duplicates": 0}

    def merge(self, records: Sequence[AuditRecord]) -> list[AuditRecord]:
        merged = merge_batch(records)
        now = self._clock.monotonic()
        with self._lock:
            self._expire(now)
            # against earlier batches only: inside this one, merge_batch decided
            late = [self._late(r) for r in merged]
            out = [r for r, is_late in zip(merged, late, strict=True) if not is_late]
            for r in out:
                self._remember(r, now)
        for r, is_late in zip(merged, late, strict=True):
            if is_late:  # ids only: never content
                _log.info("span %s/%s is of a call already recorded; not written again",
                          r.trace_id, r.span_id)
        self.stats["merged"] += len(records) - len(merged)
        self.stats["late_duplicates"] += len(merged) - len(out)
        return out

    def _late(self, r: AuditRecord) -> bool:
        """A span of a call already let through (same identity as ``same_call``)."""
        if r.request_id:
            seen = self._responses.get(r.request_id)
            if (seen is not None and _tenants_agree(seen.tenant, r.tenant_id)
                    and r.event_timestamp < seen.end and seen.start < _end(r)):
                return True
        if r.parent_span_id:  # its parent went out before it
            seen = self._spans.get((r.trace_id, r.parent_span_id))
            if seen is not None and self._matches(seen, r):
                return True
        child = self._children.get((r.trace_id, r.span_id))  # its only child went out before
        return child is not None and self._matches(child, r)

    @staticmethod
    def _matches(seen: _Seen, r: AuditRecord) -> bool:
        return (_agree(seen.model, r.model, _ABSENT_MODELS)
                and _agree(seen.operation, r.operation_name, _NO_OPERATION))

    def _remember(self, r: AuditRecord, now: float) -> None:
        seen = _Seen(r.tenant_id, r.event_timestamp, _end(r), r.trace_id, r.model,
                     r.operation_name, now)
        if r.request_id:
            self._responses[r.request_id] = seen
        self._spans[(r.trace_id, r.span_id)] = seen
        if r.parent_span_id:  # its parent, arriving later, is the same call: if its only child
            key = (r.trace_id, r.parent_span_id)
            self._children[key] = None if key in self._children else seen
        for memory in (self._responses, self._spans, self._children):
            while len(memory) > self.capacity:
                memory.popitem(last=False)

    def _expire(self, now: float) -> None:
        for memory in (self._responses, self._spans, self._children):
            while memory:
                _, oldest = next(iter(memory.items()))
                if oldest is not None and now - oldest.seen_at <= self.window_s:
                    break
                memory.popitem(last=False)
