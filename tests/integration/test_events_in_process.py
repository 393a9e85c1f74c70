"""In-process: GenAI events whose span never comes are dropped after the bound and recorded
in ``control_events`` (ids and counts, never content); the composed pipeline's joiner runs
on the exporter's injected clock."""

from __future__ import annotations

import pytest

from genai_audit.clock import ManualClock
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.processor.events import GenAIEvent

pytestmark = pytest.mark.integration


def test_unjoined_events_become_a_control_note(store, keystore, make_span):
    clock = ManualClock()
    settings = Settings.load({"max_retries": 0, "ledger_checkpoint_seconds": 3600}, env={})
    exporter = ClickHouseSpanExporter(settings, store=store, keys=keystore, clock=clock)
    joiner = exporter.pipeline.joiner
    assert joiner is not None
    joiner.add("", [GenAIEvent("gen_ai.user.message", "a" * 32, "b" * 16,
                               {"content": "secret prompt of a lost span"})])
    exporter.export([make_span()])  # within the bound: still held
    assert joiner.held() == 1
    assert store.rows("SELECT count() FROM control_events") == [(0,)]
    clock.advance(31)
    exporter.export([make_span()])
    assert joiner.held() == 0
    [(kind, ok, detail)] = store.rows("SELECT kind, ok, detail FROM control_events")
    assert (kind, ok) == ("unjoined_events", False)
    assert f"{'a' * 32}/{'b' * 16}:1" in detail and "secret" not in detail
    exporter.shutdown()
