"""End to end: PII sent through the instrumented openai client never reaches the store.

Real OpenAIInstrumentor, a TracerProvider of this test, ComplianceSpanProcessor and
ClickHouseSpanExporter into the embedded store; then every column of every table of the
test's database is read back and searched for each value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from genai_audit.clickhouse.dsn import validate_identifier
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.demo.stub_llm import StubLLM
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.instrumentation.context import audit_context
from genai_audit.instrumentation.guard import guard
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.redaction.engine import shared_engine
from genai_audit.processor.redaction.policy import PolicySet
from genai_audit.processor.span_processor import ComplianceSpanProcessor

pytestmark = pytest.mark.integration

VALUES = {
    "PERSON": "Maria Novak",
    "EMAIL_ADDRESS": "maria.novak@clinic.org",
    "US_SSN": "123-45-6789",
    "CREDIT_CARD": "5555 5555 5555 4444",
    "PHONE_NUMBER": "+44 20 7946 0958",
    "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
    "API_KEY": "sk-proj-4hT9vQ2mX7pL0aZ3nB8cR5yW1eK6uJ",
    "MEDICAL_RECORD_NUMBER": "448812",
    "DATE_TIME": "03/14/1961",
}
PROMPT = (f"Patient {VALUES['PERSON']} (MRN {VALUES['MEDICAL_RECORD_NUMBER']}, DOB "
          f"{VALUES['DATE_TIME']}, SSN {VALUES['US_SSN']}) pays with card "
          f"{VALUES['CREDIT_CARD']} or IBAN {VALUES['IBAN_CODE']}; call "
          f"{VALUES['PHONE_NUMBER']} or mail {VALUES['EMAIL_ADDRESS']}. "
          f"Our key is {VALUES['API_KEY']}.")


@pytest.fixture
def audited(store: Store, keystore: LocalKeyStore, openai_tracing: Any
            ) -> Iterator[ComplianceSpanProcessor]:
    shared_engine().warm()  # as an application would at start; not on the request thread
    settings = Settings(schedule_delay_ms=50)
    exporter = ClickHouseSpanExporter(settings, store=store,
                                      pipeline=default_pipeline(settings, keystore))
    processor = ComplianceSpanProcessor(exporter, settings)
    openai_tracing.forwarder.targets[:] = [processor]
    try:
        yield processor
    finally:
        openai_tracing.forwarder.targets.clear()
        processor.shutdown()


def every_stored_value(store: Store) -> str:
    tables = [row[0] for row in store.rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND engine NOT LIKE '%View%'")]
    assert "interactions" in tables
    dump = []
    for table in tables:
        validate_identifier(table)
        for row in store.rows(f"SELECT * FROM `{table}`"):
            dump.append(repr(row))
    return "\n".join(dump)


def test_pii_is_absent_from_every_stored_column(store: Store, stub_llm: StubLLM,
                                                audited: ComplianceSpanProcessor) -> None:
    plain = openai.OpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0)
    guarded = guard(openai.OpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0),
                    policies=PolicySet())
    messages = [{"role": "system", "content": f"Be kind to {VALUES['PERSON']}."},
                {"role": "user", "content": PROMPT}]
    with audit_context(tenant_id="acme", user_id="maria@patients", tool_name="triage",
                       region="EU"):
        answer = plain.chat.completions.create(model="gpt-4o", messages=messages)
        streamed = "".join(c.choices[0].delta.content or "" for c in
                           plain.chat.completions.create(model="gpt-4o", messages=messages,
                                                         stream=True) if c.choices)
        refilled = guarded.chat.completions.create(model="gpt-4o", messages=messages)

    async def async_call() -> None:
        client = openai.AsyncOpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0)
        with audit_context(tenant_id="acme", user_id="maria@patients", tool_name="triage"):
            await client.chat.completions.create(model="gpt-4o", messages=messages)

    asyncio.run(async_call())
    assert audited.force_flush(30_000)
    # the application still sees everything
    assert answer.choices[0].message.content == streamed == "Noted: " + PROMPT
    assert refilled.choices[0].message.content == "Noted: " + PROMPT

    stored = every_stored_value(store)
    assert "acme" in stored and "triage" in stored  # the scan does read the rows
    for entity, value in VALUES.items():
        assert value not in stored, f"{entity} leaked into the store"
    assert "maria@patients" not in stored  # the user id is pseudonymized
    rows = store.rows("SELECT has_pii_detected, pii_redacted_before_llm, hipaa_compliant_route, "
                      "content_state, pii_entity_counts FROM interactions ORDER BY event_timestamp")
    assert len(rows) == 4
    assert all(row[0] for row in rows)  # every record detected PII
    assert [row[1] for row in rows] == [False, False, True, False]
    assert [row[2] for row in rows] == [False, False, True, False]
    assert all(row[3] == "plaintext" for row in rows)
    for entity in VALUES:
        assert rows[0][4].get(entity, 0) >= 1, entity
    previews = store.rows("SELECT response_preview FROM interactions")
    assert all("<PERSON_1>" in p[0] for p in previews)
