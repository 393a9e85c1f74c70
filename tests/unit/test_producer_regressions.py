"""Issue 19's reported defects, through APIs that predate the fix (each failed before it)."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.config import Settings
from genai_audit.instrumentation import audit_context
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.normalize import normalize
from genai_audit.processor.pricing import PricingStage, load_price_table
from genai_audit.processor.record import Flag

CALL = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.id": "chatcmpl-7", "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 100}


def test_two_instrumentations_of_one_call_are_one_row_with_one_cost(keystore):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with audit_context(tenant_id="acme", user_id="alice"):
        with provider.get_tracer("opentelemetry.instrumentation.openai_v2"
                                 ).start_as_current_span("chat gpt-4o-mini", attributes=CALL):
            with provider.get_tracer("opentelemetry.instrumentation.openai.v1"
                                     ).start_as_current_span("openai.chat", attributes=CALL):
                pass
    records = default_pipeline(Settings.load(env={}), keystore).build(
        exporter.get_finished_spans())
    assert len(records) == 1
    assert records[0].total_cost == Decimal("0.000210000")  # 1000 x 0.15 + 100 x 0.60 per 1M


def test_claude_haiku_4_5_is_priced(make_span):
    record = normalize(make_span(**{"gen_ai.request.model": "claude-haiku-4-5",
                                    "gen_ai.response.model": None}))
    PricingStage(load_price_table()).process([record])
    assert Flag.UNKNOWN_MODEL not in record.flags and record.total_cost > 0


def test_anthropic_cache_writes_are_not_priced_as_input(make_span):
    record = normalize(make_span(**{
        "gen_ai.system": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.model": None, "gen_ai.usage.input_tokens": None,
        "gen_ai.usage.output_tokens": None, "gen_ai.usage.prompt_tokens": 1_000_000,
        "gen_ai.usage.completion_tokens": 0,
        "gen_ai.usage.cache_creation_input_tokens": 1_000_000}))
    PricingStage(load_price_table()).process([record])
    assert record.total_cost == Decimal("3.75")  # 1.25 x the 3.00 input rate


def test_is_streaming_false_as_a_string(make_span):
    assert normalize(make_span(**{"llm.is_streaming": "False"})).is_streaming is False


def test_finish_reasons_as_a_json_string(make_span):
    r = normalize(make_span(**{"gen_ai.response.finish_reasons": '["stop"]'}))
    assert r.finish_reasons == ("stop",)


def test_user_in_gen_ai_request_user(make_span):
    r = normalize(make_span(**{"enduser.id": None, "gen_ai.request.user": "bob"}))
    assert r.user_id == "bob"
