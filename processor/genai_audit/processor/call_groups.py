"""``CallGroups``: the nested GenAI spans of one call, handed on together.

Two instrumentations wrapping one client call nest their spans: the outer one's span is the
inner one's parent. Which ends first depends on the instrumentation (a stream may end the
outer span before the inner one's wrapper sees the last chunk). The merge stage
(``processor/merge.py``) folds them into one record when they are in one batch; this keeps
them together until the whole nesting has ended, so they are.

A GenAI span's *group* is complete when it has ended and none of its GenAI children is still
open; a complete group joins its parent's group while the parent is open or waiting for
other children, else it is handed on. Spans that nest under no open GenAI span (the usual
case) are handed on at once. Bounded: at most ``max_held`` spans wait and ``4 * max_held``
open spans are tracked; past that a group is handed on at once (the merge stage's memory
still catches its partner). ``release`` hands everything waiting on (a flush writes all
ended spans).
"""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace import ReadableSpan


class CallGroups:
    """Thread-safe; every method is a few dict operations under one lock."""

    def __init__(self, max_held: int) -> None:
        self.max_held = max_held
        self._lock = threading.Lock()
        self._open: dict[int, int] = {}  # open GenAI span -> its parent span id (0: none)
        self._kids: dict[int, int] = {}  # span -> GenAI children of it not yet complete
        self._held: dict[int, list[ReadableSpan]] = {}  # span -> ended spans of its group
        self._waiting: dict[int, int] = {}  # ended span waiting for children -> its parent
        self._count = 0  # spans in _held

    def started(self, span_id: int, parent_id: int) -> None:
        with self._lock:
            if len(self._open) >= 4 * self.max_held:  # spans never ended (a leak): untracked
                return
            self._open[span_id] = parent_id
            if parent_id and (parent_id in self._open or parent_id in self._waiting):
                self._kids[parent_id] = self._kids.get(parent_id, 0) + 1

    def ended(self, span: ReadableSpan) -> list[ReadableSpan] | None:
        """The spans to hand on now (this one's complete group), or None while it waits."""
        span_id = span.context.span_id if span.context is not None else 0
        with self._lock:
            parent_id = self._open.pop(span_id, 0)
            group = [*self._take(span_id), span]
            if self._kids.get(span_id) and self._count + len(group) <= self.max_held:
                self._waiting[span_id] = parent_id
                self._put(span_id, group)
                return None
            self._kids.pop(span_id, None)
            return self._complete(parent_id, group)

    def release(self) -> list[list[ReadableSpan]]:
        """Every waiting group, to be handed on now (the nesting stays tracked)."""
        with self._lock:
            held, self._held, self._count = list(self._held.values()), {}, 0
            self._waiting.clear()
            return held

    def _complete(self, parent_id: int, group: list[ReadableSpan]) -> list[ReadableSpan] | None:
        """A complete group: into its parent's, or handed on (returned)."""
        while parent_id and parent_id in self._kids:
            left = self._kids[parent_id] - 1
            if left:
                self._kids[parent_id] = left
            else:
                del self._kids[parent_id]
            if parent_id in self._open or (left and parent_id in self._waiting):
                if self._count + len(group) > self.max_held:
                    return group
                self._put(parent_id, group)
                return None
            if parent_id not in self._waiting:
                return group
            grandparent = self._waiting.pop(parent_id)  # it waited for us: complete now
            group = [*self._take(parent_id), *group]
            parent_id = grandparent
        return group

    def _put(self, key: int, spans: list[ReadableSpan]) -> None:
        self._held.setdefault(key, []).extend(spans)
        self._count += len(spans)

    def _take(self, key: int) -> list[ReadableSpan]:
        spans = self._held.pop(key, [])
        self._count -= len(spans)
        return spans
