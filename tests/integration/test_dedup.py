"""RecentIds: exactly-once for one writer, with the store asked only when needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from genai_audit.clickhouse.dedup import RecentIds
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import InteractionWriter
from genai_audit.processor.normalize import normalize

pytestmark = pytest.mark.integration


class CountingStore(Store):
    def __init__(self, inner: Store) -> None:
        super().__init__(inner.client, inner.dsn, inner.database)
        self.lookups = 0

    def rows(self, sql, parameters=None, settings=None):  # type: ignore[override]
        self.lookups += 1
        return super().rows(sql, parameters, settings)


def _records(make_span, n):
    out = []
    for _ in range(n):
        record = normalize(make_span())
        record.user_id = None
        out.append(record)
    return out


def _write(store, memory, records, **kw):
    fresh = memory.fresh(store, records, **kw)
    InteractionWriter(store).write(fresh)
    memory.remember(fresh)
    return fresh


def test_steady_state_needs_no_lookup_and_memory_catches_resends(store, make_span):
    counting = CountingStore(store)
    memory = RecentIds(now=datetime.now(UTC) - timedelta(hours=1))  # started an hour ago
    a, b = _records(make_span, 2)
    assert _write(counting, memory, [a, b, a]) == [a, b]  # in-batch duplicate dropped
    assert _write(counting, memory, [b]) == []  # a resend: memory answers
    assert counting.lookups == 0
    assert store.scalar("SELECT count() FROM interactions") == 2


def test_after_a_restart_and_after_eviction_the_store_answers(store, make_span):
    a, b, c = _records(make_span, 3)
    first_run = RecentIds(capacity=1, now=datetime.now(UTC) - timedelta(hours=1))
    _write(store, first_run, [a])
    _write(store, first_run, [b])  # evicts a
    counting = CountingStore(store)
    assert _write(counting, first_run, [a, c]) == [c]  # a: not in memory, but older than
    assert counting.lookups == 1                      # the newest eviction -> store says no
    restarted = RecentIds()  # spans older than this start (+ skew) are always checked
    assert _write(counting, restarted, [a, b, c]) == []
    assert counting.lookups == 2
    assert store.scalar("SELECT count() FROM interactions") == 3
