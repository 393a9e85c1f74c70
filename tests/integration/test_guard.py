"""The pre-LLM guard against the stub LLM with the real openai client and instrumentation.

The stub answers "Noted: <last user message>", so what the caller gets back shows the
re-filling and what the provider received (captured on the wire) shows the redaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.demo.stub_llm import StubLLM
from genai_audit.instrumentation.context import audit_context
from genai_audit.instrumentation.distro import BaggageStampingProcessor
from genai_audit.instrumentation.guard import RouteRefused, guard, guard_callable
from genai_audit.processor.normalize import normalize
from genai_audit.processor.record import Flag
from genai_audit.processor.redaction.engine import RedactionEngine, shared_engine
from genai_audit.processor.redaction.policy import PolicySet, RegionRule

pytestmark = pytest.mark.integration

PROMPT = ("Patient Maria Novak (DOB 03/14/1961, SSN 123-45-6789) asks to be called on "
          "+44 20 7946 0958 or mailed at maria.novak@clinic.org.")
SECRETS = ["Maria Novak", "03/14/1961", "123-45-6789", "+44 20 7946 0958",
           "maria.novak@clinic.org"]
NOWHERE = "http://127.0.0.1:9/v1"  # discard port: a call that went here would fail


@pytest.fixture(scope="module")
def engine() -> RedactionEngine:
    return shared_engine().warm()


@pytest.fixture(scope="module")
def spans(openai_tracing: Any) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    targets = [BaggageStampingProcessor(), SimpleSpanProcessor(exporter)]
    openai_tracing.forwarder.targets[:] = targets
    yield exporter
    openai_tracing.forwarder.targets.clear()


class Wire:
    """Request bodies the provider received."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def hook(self, request: httpx.Request) -> None:
        self.bodies.append(json.loads(request.read() or b"{}"))

    async def ahook(self, request: httpx.Request) -> None:
        self.hook(request)

    def text(self) -> str:
        return json.dumps(self.bodies)


def sync_client(base_url: str, wire: Wire) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0,
                         http_client=httpx.Client(event_hooks={"request": [wire.hook]}))


def async_client(base_url: str, wire: Wire) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0,
                              http_client=httpx.AsyncClient(event_hooks={"request": [wire.ahook]}))


def last_span(spans: InMemorySpanExporter) -> ReadableSpan:
    return spans.get_finished_spans()[-1]


def assert_redacted_on_the_wire(wire: Wire) -> None:
    sent = wire.text()
    assert wire.bodies and "<PERSON_1>" in sent and "<US_SSN_1>" in sent
    for value in SECRETS:
        assert value not in sent, value


def test_sync_call_redacts_before_sending_and_refills_the_answer(
        stub_llm: StubLLM, spans: InMemorySpanExporter, engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(sync_client(stub_llm.base_url, wire), policies=PolicySet(), engine=engine)
    messages = [{"role": "system", "content": "You are kind to Maria Novak."},
                {"role": "user", "content": PROMPT}]
    with audit_context(tenant_id="acme", user_id="u-1", tool_name="triage"):
        reply = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert reply.choices[0].message.content == "Noted: " + PROMPT
    assert messages[1]["content"] == PROMPT  # the caller's messages are untouched
    assert_redacted_on_the_wire(wire)
    record = normalize(last_span(spans))
    assert record.pii_redacted_before_llm and record.hipaa_compliant_route
    assert record.has_pii_detected and record.pii_entity_counts["PERSON"] == 2
    for value in SECRETS:
        assert value not in json.dumps(record.content.input_messages + record.content.output_messages)


def test_text_parts_and_tool_arguments_are_redacted(stub_llm: StubLLM,
                                                    engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(sync_client(stub_llm.base_url, wire), policies=PolicySet(), engine=engine)
    messages = [
        {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {
                "name": "lookup", "arguments": json.dumps({"ssn": "123-45-6789"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Maria Novak: no record"},
        {"role": "user", "content": [{"type": "text", "text": "Thanks, from Maria Novak"}]},
    ]
    reply = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert reply.choices[0].message.content == "Noted: Thanks, from Maria Novak"
    assert_redacted_on_the_wire(wire)


def test_streaming_refills_across_chunk_boundaries(stub_llm: StubLLM,
                                                   engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(sync_client(stub_llm.base_url, wire), policies=PolicySet(), engine=engine)
    with client.chat.completions.create(model="gpt-4o", stream=True,
                                        messages=[{"role": "user", "content": PROMPT}]) as stream:
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == "Noted: " + PROMPT
    assert_redacted_on_the_wire(wire)


def test_async_and_async_streaming(stub_llm: StubLLM, spans: InMemorySpanExporter,
                                   engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(async_client(stub_llm.base_url, wire), policies=PolicySet(), engine=engine)

    async def main() -> tuple[str, str]:
        with audit_context(tenant_id="acme", tool_name="triage"):
            reply = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
            stream = await client.chat.completions.create(
                model="gpt-4o", stream=True, messages=[{"role": "user", "content": PROMPT}])
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        return str(reply.choices[0].message.content), "".join(pieces)

    plain, streamed = asyncio.run(main())
    assert plain == streamed == "Noted: " + PROMPT
    assert_redacted_on_the_wire(wire)
    assert len(wire.bodies) == 2
    record = normalize(spans.get_finished_spans()[-1])
    assert record.pii_redacted_before_llm and record.tenant_id == "acme"


def test_guard_callable(engine: RedactionEngine) -> None:
    seen: list[Any] = []

    def llm(messages: list[dict[str, Any]], **kwargs: Any) -> str:
        seen.append(messages)
        return "Dear " + messages[0]["content"].split()[1]

    guarded = guard_callable(llm, policies=PolicySet(), engine=engine)
    assert guarded([{"role": "user", "content": "Hello Maria Novak, welcome"}]) == (
        "Dear Maria Novak,")
    assert seen == [[{"role": "user", "content": "Hello <PERSON_1>, welcome"}]]


def test_guard_uses_the_calls_tenant_languages(engine: RedactionEngine) -> None:
    """The guard searches with the phone formats of the guarded call's own policy."""
    seen: list[str] = []

    def llm(messages: list[dict[str, Any]], **kwargs: Any) -> str:
        seen.append(messages[0]["content"])
        return "ok"

    policies = PolicySet(base={"languages": ("en",)}, tenants={"berlin": {"languages": ("de",)}})
    guarded = guard_callable(llm, policies=policies, engine=engine)
    for tenant in ("berlin", "boston"):
        with audit_context(tenant_id=tenant):
            guarded([{"role": "user", "content": "Rufen Sie mich an: 089 12345678"}])
    berlin, boston = seen
    assert "089 12345678" not in berlin and "<PHONE_NUMBER_1>" in berlin
    assert "089 12345678" in boston  # en: US/GB formats only


def routes(stub: StubLLM, *, reroute: bool) -> PolicySet:
    return PolicySet(regions={"EU": RegionRule(
        "EU", allowed_endpoints=(stub.base_url.rstrip("/"),),
        reroute_to=stub.base_url.rstrip("/") if reroute else None,
        model="eu-local-model" if reroute else None)})


def test_eu_user_is_rerouted_to_the_regions_endpoint(stub_llm: StubLLM,
                                                     spans: InMemorySpanExporter,
                                                     engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(sync_client(NOWHERE, wire), policies=routes(stub_llm, reroute=True),
                   engine=engine)
    with audit_context(tenant_id="acme", user_id="u-eu", region="EU"):
        reply = client.chat.completions.create(model="gpt-4o",
                                               messages=[{"role": "user", "content": PROMPT}])
    assert reply.model == "eu-local-model"
    assert reply.choices[0].message.content == "Noted: " + PROMPT
    record = normalize(last_span(spans))
    assert Flag.ROUTE_REROUTED in record.flags and record.hipaa_compliant_route
    assert last_span(spans).attributes["genai_audit.route.endpoint"] == stub_llm.base_url.rstrip("/")


def test_allowed_and_unrestricted_regions_go_where_asked(stub_llm: StubLLM,
                                                        spans: InMemorySpanExporter,
                                                        engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(sync_client(stub_llm.base_url, wire),
                   policies=routes(stub_llm, reroute=False), engine=engine)
    for region, decision in (("EU", "allowed"), ("US", "unrestricted")):
        with audit_context(tenant_id="acme", region=region):
            client.chat.completions.create(model="gpt-4o",
                                           messages=[{"role": "user", "content": "hi"}])
        assert last_span(spans).attributes["genai_audit.route.decision"] == decision
    assert len(wire.bodies) == 2


def test_eu_user_is_refused_when_no_reroute_exists(stub_llm: StubLLM,
                                                   spans: InMemorySpanExporter,
                                                   engine: RedactionEngine,
                                                   openai_tracing: Any) -> None:
    wire = Wire()
    policies = PolicySet(regions={"EU": RegionRule("EU", ("http://127.0.0.1:11434/v1",))})
    client = guard(sync_client(stub_llm.base_url, wire), policies=policies, engine=engine,
                   tracer_provider=openai_tracing.provider)
    with audit_context(tenant_id="acme", user_id="u-eu", region="EU"), \
            pytest.raises(RouteRefused, match="region policy forbids"):
        client.chat.completions.create(model="gpt-4o",
                                       messages=[{"role": "user", "content": PROMPT}])
    assert wire.bodies == []  # nothing left the process
    record = normalize(last_span(spans))
    assert Flag.ROUTE_REFUSED in record.flags and record.tenant_id == "acme"
    assert record.content.is_empty() and record.model == "gpt-4o"
    assert record.error_type == "RouteRefused"


# -- issue 17: the HIPAA route flag is computed from a rule; no path around the guard --------
class Redirect(httpx.BaseTransport):
    """Sends every request to the stub whatever host the client names, so a test can use a
    remote-looking endpoint (a loopback endpoint counts as a local model)."""

    def __init__(self, stub: StubLLM, wire: Wire) -> None:
        self.stub, self.wire, self.inner = stub, wire, httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.wire.hook(request)
        port = int(self.stub.base_url.rsplit(":", 1)[1].split("/")[0])
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
        return self.inner.handle_request(request)


REMOTE = "https://llm.example.com/v1"


def remote_client(stub: StubLLM, wire: Wire) -> openai.OpenAI:
    return openai.OpenAI(base_url=REMOTE, api_key="test", max_retries=0,
                         http_client=httpx.Client(transport=Redirect(stub, wire)))


def test_unrestricted_remote_route_is_not_hipaa_compliant(
        stub_llm: StubLLM, spans: InMemorySpanExporter, engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(remote_client(stub_llm, wire), policies=PolicySet(), engine=engine)
    with audit_context(tenant_id="acme", region="US", data_class="phi"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert wire.bodies  # the call went out, to an endpoint nobody declared covered
    span = last_span(spans)
    assert span.attributes["genai_audit.route.decision"] == "unrestricted"
    assert normalize(span).hipaa_compliant_route is False


def test_baa_covered_endpoint_and_local_model_are_hipaa_compliant(
        stub_llm: StubLLM, spans: InMemorySpanExporter, engine: RedactionEngine) -> None:
    covered = PolicySet(tenants={"acme": {"baa_endpoints": frozenset({REMOTE})}})
    wire = Wire()
    client = guard(remote_client(stub_llm, wire), policies=covered, engine=engine)
    with audit_context(tenant_id="acme"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert normalize(last_span(spans)).hipaa_compliant_route is True
    with audit_context(tenant_id="globex"):  # another tenant declared no BAA with it
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert normalize(last_span(spans)).hipaa_compliant_route is False
    local = guard(sync_client(stub_llm.base_url, Wire()), policies=PolicySet(), engine=engine)
    with audit_context(tenant_id="globex"):  # 127.0.0.1: a model on this machine
        local.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert normalize(last_span(spans)).hipaa_compliant_route is True


def test_baa_endpoints_are_read_from_the_policy_file(tmp_path: Any) -> None:
    from genai_audit.processor.redaction.policy import load_policy
    path = tmp_path / "policy.toml"
    path.write_text('[redaction.tenants.acme]\nbaa_endpoints = ["https://llm.example.com/v1/"]\n')
    policies = load_policy(path, env={})
    assert policies.for_call("acme", "t").baa_endpoints == frozenset({REMOTE})
    assert policies.for_call("globex", "t").baa_endpoints == frozenset()


def test_with_options_stays_guarded(stub_llm: StubLLM, engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(sync_client(stub_llm.base_url, wire), policies=PolicySet(), engine=engine)
    for derived in (client.with_options(timeout=5.0), client.copy(max_retries=0)):
        reply = derived.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
        assert reply.choices[0].message.content == "Noted: " + PROMPT
    assert len(wire.bodies) == 2
    assert_redacted_on_the_wire(wire)


@pytest.mark.parametrize("path", ["responses", "completions", "embeddings", "beta",
                                  "with_raw_response", "with_streaming_response", "batches",
                                  "post", "files", "audio", "images"])
def test_unguarded_resources_are_refused(stub_llm: StubLLM, engine: RedactionEngine,
                                         path: str) -> None:
    from genai_audit.instrumentation.guard import NotGuarded
    wire = Wire()
    client = guard(sync_client(stub_llm.base_url, wire), policies=PolicySet(), engine=engine)
    with pytest.raises(NotGuarded, match=path):
        getattr(client, path)
    with pytest.raises(NotGuarded, match="parse"):
        client.chat.completions.parse
    assert str(client.base_url).startswith(stub_llm.base_url.rstrip("/"))  # metadata passes
    assert wire.bodies == []


def test_responses_create_never_sends_unredacted_content(stub_llm: StubLLM,
                                                         engine: RedactionEngine) -> None:
    wire = Wire()
    client = guard(sync_client(stub_llm.base_url, wire), policies=PolicySet(), engine=engine)
    with pytest.raises(AttributeError):
        client.responses.create(model="gpt-4o", input=PROMPT)
    assert "Maria Novak" not in wire.text()
