from __future__ import annotations

import json
from decimal import Decimal

import pytest

from genai_audit.processor.pricing import PricingError, PricingStage, load_price_table
from genai_audit.processor.record import Flag


def test_exact_and_longest_prefix_match():
    table = load_price_table()
    assert table.cost("gpt-4o", 1_000_000, 0) == Decimal("2.50")
    assert table.cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == Decimal("0.15")
    assert table.cost("gpt-4o-2024-08-06", 0, 1_000_000) == Decimal("10.00")
    assert table.cost("GPT-4O", 10, 20) == Decimal("0.000225000")


def test_cached_tokens_use_the_cached_price():
    table = load_price_table()
    assert table.cost("gpt-4o", 1000, 0, cached_tokens=400) == Decimal("0.002000000")


def test_unknown_model_costs_zero_and_is_flagged(make_span):
    from genai_audit.processor.normalize import normalize

    record = normalize(make_span(**{"gen_ai.request.model": "acme-llm",
                                    "gen_ai.response.model": None}))
    PricingStage(load_price_table()).process([record])
    assert record.total_cost == 0 and Flag.UNKNOWN_MODEL in record.flags
    assert record.pricing_version == load_price_table().version


def test_override_file_adds_and_replaces(tmp_path):
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"version": "acme-2026", "models": {
        "acme-llm": {"input": "1", "output": "2"}, "gpt-4o": {"input": "0", "output": "0"}}}))
    table = load_price_table(f)
    assert table.version.endswith("+acme-2026")
    assert table.cost("acme-llm", 1_000_000, 1_000_000) == Decimal("3")
    assert table.cost("gpt-4o", 1000, 1000) == Decimal(0)


@pytest.mark.parametrize("content, message", [
    ("{", "invalid JSON"),
    ('{"models": []}', "'models' object"),
    ('{"models": {"m": {"input": "1"}}}', "lacks price 'output'"),
    ('{"models": {"m": {"input": "x", "output": "1"}}}', "non-numeric"),
    ('{"models": {"m": {"input": "-1", "output": "1"}}}', "negative"),
])
def test_bad_price_files_say_what_is_wrong(tmp_path, content, message):
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(PricingError, match=message):
        load_price_table(f)


def test_missing_price_file_is_named(tmp_path):
    with pytest.raises(PricingError, match="nope.json"):
        load_price_table(tmp_path / "nope.json")


@pytest.mark.parametrize("model", [
    "claude-haiku-4-5", "claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929",
    "claude-opus-4-1-20250805", "claude-opus-4-5", "gemini-2.5-pro", "gemini-2.5-flash",
    "gemini-2.0-flash", "gpt-4.1-2025-04-14", "gpt-5", "gpt-5.1", "o3", "o4-mini", "o1-mini",
])
def test_current_model_families_are_known(model):
    assert load_price_table().lookup(model) is not None, model


def test_longest_prefix_separates_generations():
    table = load_price_table()
    assert table.cost("claude-opus-4-5-20251101", 1_000_000, 0) == Decimal("5.00")
    assert table.cost("claude-opus-4-20250514", 1_000_000, 0) == Decimal("15.00")


def test_anthropic_cache_writes_are_priced_at_the_cache_write_rate():
    """Reported: Traceloop anthropic's cache-write tokens were priced at the input rate."""
    table = load_price_table()
    # 1M input tokens, all written to the cache: 1.25x the input rate
    assert table.cost("claude-sonnet-4-5", 1_000_000, 0,
                      cache_write_tokens=1_000_000) == Decimal("3.75")
    # mixed: 100k plain, 300k read, 600k written; 10k output
    cost = table.cost("claude-haiku-4-5", 1_000_000, 10_000, 300_000,
                      cache_write_tokens=600_000)
    assert cost == (Decimal("0.1") * 1 + Decimal("0.3") * Decimal("0.10")
                    + Decimal("0.6") * Decimal("1.25") + Decimal("0.01") * 5)


def test_reasoning_tokens_are_part_of_output_unless_priced_apart(tmp_path):
    table = load_price_table()
    assert table.cost("o3", 0, 1_000_000, reasoning_tokens=800_000) == Decimal("8.00")
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"version": "r", "models": {
        "thinker": {"input": "1", "output": "2", "reasoning": "4"}}}))
    t = load_price_table(f)
    assert t.cost("thinker", 0, 1_000_000, reasoning_tokens=250_000) == Decimal("2.5")
    # a producer that counts reasoning apart from output: the rest is priced on top
    assert t.cost("thinker", 0, 0, reasoning_tokens=1_000_000) == Decimal("4")


def test_pricing_stage_charges_cache_writes(make_span):
    from genai_audit.processor.normalize import normalize

    record = normalize(make_span(**{
        "gen_ai.request.model": "claude-haiku-4-5", "gen_ai.response.model": None,
        "gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 1_000_000}))
    PricingStage(load_price_table()).process([record])
    assert record.total_cost == Decimal("1.25") and Flag.UNKNOWN_MODEL not in record.flags
