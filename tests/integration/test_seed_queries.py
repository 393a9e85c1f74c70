"""The seed article's auditor queries run verbatim against `llm_interaction_audit`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from genai_audit.clickhouse.writer import InteractionWriter
from genai_audit.config import Settings
from genai_audit.processor.factory import default_pipeline

pytestmark = pytest.mark.integration

COST_QUERY = ("SELECT SUM(total_cost) FROM llm_interaction_audit WHERE tool_name = "
              "'contract_review' AND event_timestamp > '2024-04-01';")

SOC2_QUERY = """
    SELECT
        DATE(event_timestamp) as day,
        tool_name,
        user_id,
        model,
        SUM(prompt_tokens + response_tokens) as total_tokens,
        SUM(total_cost) as daily_cost,
        COUNT(*) as interaction_count
    FROM llm_interaction_audit
    WHERE tenant_id = 'acme_corp'
        AND event_timestamp BETWEEN '2024-03-01 00:00:00' AND '2024-06-01 00:00:00'
        AND has_pii_detected = FALSE -- Demonstrate PII controls are working
    GROUP BY DATE(event_timestamp), tool_name, user_id, model
    ORDER BY day DESC;
    """

# (tenant, user, tool, model, day, input tokens, output tokens, pii)
SCENARIO = [
    ("acme_corp", "u1", "contract_review", "gpt-4o", "2024-03-15", 1000, 500, False),
    ("acme_corp", "u1", "contract_review", "gpt-4o", "2024-04-10", 2000, 1000, False),
    ("acme_corp", "u1", "contract_review", "gpt-4o", "2024-04-10", 100, 100, False),
    ("acme_corp", "u2", "contract_review", "gpt-4o", "2024-04-10", 100, 100, True),
    ("acme_corp", "u2", "hr_helpdesk", "gpt-4o-mini", "2024-05-02", 300, 200, False),
    ("globex", "u3", "contract_review", "gpt-4.1", "2024-05-20", 1000, 1000, False),
    ("acme_corp", "u1", "hr_helpdesk", "gpt-4o", "2024-07-01", 10, 10, False),
]


@pytest.fixture
def seeded(store, keystore, make_span):
    settings = Settings.load({"retention_days": 3650}, env={})
    spans = [make_span(**{"tenant.id": t, "enduser.id": u, "genai_audit.tool": tool,
                          "gen_ai.request.model": m, "gen_ai.response.model": m,
                          "gen_ai.usage.input_tokens": i, "gen_ai.usage.output_tokens": o})
             for t, u, tool, m, _d, i, o, _p in SCENARIO]
    records = default_pipeline(settings, keystore).build(spans)
    for record, (*_, day, _i, _o, pii) in zip(records, SCENARIO):
        record.event_timestamp = datetime.fromisoformat(day + "T12:00:00").replace(tzinfo=UTC)
        record.has_pii_detected = pii
    InteractionWriter(store).write(records)
    return records


def test_cost_of_contract_review_since_april(store, seeded):
    expected = sum((r.total_cost for r, s in zip(seeded, SCENARIO)
                    if s[2] == "contract_review" and s[4] > "2024-04-01"), Decimal(0))
    assert expected > 0
    assert store.scalar(COST_QUERY) == expected


def test_generate_soc2_report_query(store, seeded):
    result = store.query(SOC2_QUERY)
    assert list(result.column_names) == ["day", "tool_name", "user_id", "model", "total_tokens",
                                         "daily_cost", "interaction_count"]
    rows = [tuple(r) for r in result.result_rows]
    key = {s[1]: r.user_key for r, s in zip(seeded, SCENARIO) if s[0] == "acme_corp"}
    cost = {i: r.total_cost for i, r in enumerate(seeded)}
    assert [(str(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("2024-05-02", "hr_helpdesk", key["u2"], "gpt-4o-mini", 500, cost[4], 1),
        ("2024-04-10", "contract_review", key["u1"], "gpt-4o", 3200, cost[1] + cost[2], 2),
        ("2024-03-15", "contract_review", key["u1"], "gpt-4o", 1500, cost[0], 1),
    ]
