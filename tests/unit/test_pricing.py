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
