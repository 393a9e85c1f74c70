"""RedactionStage: every text slot, counts, capture off, fail closed on error and time-out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.normalize import normalize
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.record import AuditRecord, ContentState, Flag
from genai_audit.processor.redaction.engine import RedactionEngine, RedactionTimeout
from genai_audit.processor.redaction.policy import PolicySet
from genai_audit.processor.redaction.recognizers import Finding
from genai_audit.processor.redaction.stage import RedactionStage
from genai_audit.processor.render import RenderStage

PII = ["Maria Novak", "maria.novak@clinic.org", "123-45-6789", "4111 1111 1111 1111",
       "+44 20 7946 0958", "448812"]

INPUT = [
    {"role": "user", "parts": [{"type": "text", "content":
        "I am Maria Novak, SSN 123-45-6789, email maria.novak@clinic.org."}]},
    {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup",
                                     "arguments": {"card": "4111 1111 1111 1111"}}]},
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                                "response": "MRN 448812 on file, phone +44 20 7946 0958"}]},
]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content":
    "Noted, Maria Novak: we will call +44 20 7946 0958."}], "finish_reason": "stop"}]
SYSTEM = [{"type": "text", "content": "You help Maria Novak's care team."}]


def pii_span(make_span: Callable[..., ReadableSpan], **extra: Any) -> ReadableSpan:
    return make_span(gen_ai__input__messages=json.dumps(INPUT),
                     gen_ai__output__messages=json.dumps(OUTPUT),
                     gen_ai__system_instructions=json.dumps(SYSTEM), **extra)


def run(records: list[AuditRecord], stage: RedactionStage) -> None:
    RecordPipeline([stage, RenderStage()]).run(records)


def test_every_slot_is_redacted_and_counted(make_span: Callable[..., ReadableSpan],
                                            keystore: LocalKeyStore,
                                            engine: RedactionEngine) -> None:
    record = normalize(pii_span(make_span))
    run([record], RedactionStage(keystore, PolicySet(), engine))
    stored = record.prompt_text + record.response_text + record.response_preview
    for value in PII:
        assert value not in stored, value
    assert record.content_state is ContentState.PLAINTEXT
    assert record.has_pii_detected
    assert record.pii_entity_counts["US_SSN"] == 1
    assert record.pii_entity_counts["PHONE_NUMBER"] == 2
    assert record.pii_entity_counts["CREDIT_CARD"] == 1
    assert "<PERSON_1>" in record.prompt_text and "<PERSON_1>" in record.response_preview
    assert json.loads(record.prompt_text)[2]["parts"][0]["arguments"] == {
        "card": "<CREDIT_CARD_1>"}
    assert '"role":"tool"' in record.prompt_text and '"id":"call_1"' in record.prompt_text


def test_batch_of_records_gets_its_own_placeholders(make_span: Callable[..., ReadableSpan],
                                                    keystore: LocalKeyStore,
                                                    engine: RedactionEngine) -> None:
    guarded = [{"role": "user", "parts": [{"type": "text", "content":
                "<PERSON_1> wrote; cc Omar Haddad at omar@y.org"}]}]
    records = [normalize(pii_span(make_span)),
               normalize(make_span(gen_ai__input__messages=json.dumps(guarded)))]
    run(records, RedactionStage(keystore, PolicySet(), engine))
    assert "<EMAIL_ADDRESS_1>" in records[1].prompt_text
    assert "<PERSON_1> wrote" in records[1].prompt_text
    assert "<PERSON_2>" in records[1].prompt_text  # numbered after the guard's placeholder
    assert not records[1].has_pii_detected or records[1].pii_entity_counts


def test_clean_record_has_no_pii(make_span: Callable[..., ReadableSpan],
                                 keystore: LocalKeyStore, engine: RedactionEngine) -> None:
    record = normalize(make_span())
    run([record], RedactionStage(keystore, PolicySet(), engine))
    assert not record.has_pii_detected and record.pii_entity_counts == {}
    assert "hello" in record.response_text


def test_capture_off_for_a_tool_keeps_metadata_only(make_span: Callable[..., ReadableSpan],
                                                    keystore: LocalKeyStore,
                                                    engine: RedactionEngine) -> None:
    policies = PolicySet(tenant_tools={("acme", "hr_helpdesk"): {"capture_content": False}})
    record = normalize(pii_span(make_span))
    run([record], RedactionStage(keystore, policies, engine))
    assert record.content_state is ContentState.NOT_CAPTURED
    assert record.prompt_text == record.response_text == ""
    assert record.prompt_tokens == 10


def test_hmac_operator_uses_the_tenant_secret(make_span: Callable[..., ReadableSpan],
                                              keystore: LocalKeyStore,
                                              engine: RedactionEngine) -> None:
    record = normalize(pii_span(make_span))
    run([record], RedactionStage(keystore, PolicySet(base={"operator": "hmac"}), engine))
    assert "<US_SSN:" in record.prompt_text and "123-45-6789" not in record.prompt_text


class BrokenEngine:
    def warm(self) -> BrokenEngine:
        return self

    def analyze_batch(self, texts: Sequence[str], deadline: float | None = None
                      ) -> list[list[Finding]]:
        raise ValueError("boom: " + texts[0])  # quotes content: must never be logged


class SlowEngine(RedactionEngine):
    """The real engine, on a machine so slow every text takes 0.2 s."""

    def __init__(self, real: RedactionEngine) -> None:
        super().__init__(nlp=real.nlp)

    def analyze_batch(self, texts: Sequence[str], deadline: float | None = None
                      ) -> list[list[Finding]]:
        time.sleep(0.2)
        return super().analyze_batch(list(texts) * 50, deadline)


@pytest.mark.parametrize("slow", [False, True])
def test_failure_or_timeout_withholds_content_and_keeps_metadata(
        make_span: Callable[..., ReadableSpan], keystore: LocalKeyStore,
        caplog: pytest.LogCaptureFixture, engine: RedactionEngine, slow: bool) -> None:
    records = [normalize(pii_span(make_span)), normalize(pii_span(make_span))]
    if slow:
        stage = RedactionStage(keystore, PolicySet(base={"timeout_ms": 100}), SlowEngine(engine))
    else:
        stage = RedactionStage(keystore, PolicySet(), BrokenEngine())  # type: ignore[arg-type]
    run(records, stage)
    for record in records:
        assert record.content_state is ContentState.WITHHELD
        assert {Flag.REDACTION_FAILED, Flag.CONTENT_WITHHELD} <= record.flags
        assert record.prompt_text == record.response_text == record.response_preview == ""
        assert record.content.is_empty()
        assert (record.tenant_id, record.prompt_tokens, record.model) == ("acme", 10, "gpt-4o")
    for value in PII:
        assert value not in caplog.text


def test_engine_deadline_is_checked(engine: RedactionEngine) -> None:
    with pytest.raises(RedactionTimeout):
        engine.analyze_batch(["Maria Novak called."], deadline=time.monotonic() - 1)


def test_the_guard_and_the_stage_use_one_engine(keystore: LocalKeyStore) -> None:
    """Same policy, same engine object: the pre-LLM guard reaches the pipeline's figures."""
    from genai_audit.instrumentation.guard import Guard

    policies = PolicySet(base={"languages": ("es",)})
    stage = RedactionStage(keystore, policies)
    assert Guard(policies).engine is stage.engine


GERMAN_PHONE = "089 12345678"  # a Munich number in national form: valid in DE, not in US/GB


def test_each_records_policy_picks_its_phone_languages(make_span: Callable[..., ReadableSpan],
                                                       keystore: LocalKeyStore,
                                                       engine: RedactionEngine) -> None:
    """One batch, two tenants: the tenant whose policy says German gets German national
    numbers redacted; the other (English only) does not, in the same engine call."""
    text = [{"role": "user", "parts": [{"type": "text",
                                        "content": f"Rufen Sie mich an: {GERMAN_PHONE}"}]}]
    records = [normalize(make_span(gen_ai__input__messages=json.dumps(text),
                                   tenant__id=tenant)) for tenant in ("berlin", "boston")]
    policies = PolicySet(base={"languages": ("en",)},
                         tenants={"berlin": {"languages": ("de",)}})
    run(records, RedactionStage(keystore, policies, engine))
    berlin, boston = records
    assert GERMAN_PHONE not in berlin.prompt_text
    assert berlin.pii_entity_counts["PHONE_NUMBER"] == 1
    assert GERMAN_PHONE in boston.prompt_text  # en: US/GB formats only
    assert "PHONE_NUMBER" not in boston.pii_entity_counts
