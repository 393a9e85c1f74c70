"""Shared fixtures.

chDB allows ONE data directory per process, for the life of the process. So the whole
pytest process shares one embedded store (``store_dsn``) and each test that needs a
clean schema gets its own database in it (``store``). Tests that run the product in a
subprocess give that subprocess its own data directory and read results back through
another subprocess (the CLI), never by opening that directory here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.demo.stub_llm import StubLLM
from genai_audit.keystore import LocalKeyStore


@pytest.fixture(scope="session")
def store_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "chdb://" + str(tmp_path_factory.mktemp("chdb-store"))


@pytest.fixture
def store(store_dsn: str) -> Iterator[Store]:
    """A freshly migrated database of its own inside the session's embedded store."""
    db = Store.open(store_dsn, f"t_{uuid.uuid4().hex[:16]}")
    migrate(db)
    yield db
    db.command(f"DROP DATABASE IF EXISTS `{db.database}`")


@pytest.fixture
def keystore(tmp_path: Path) -> LocalKeyStore:
    return LocalKeyStore(tmp_path / "keys")


@pytest.fixture(scope="session")
def stub_llm() -> Iterator[StubLLM]:
    with StubLLM() as stub:
        yield stub


GENAI_ATTRS: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o",
    "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.usage.input_tokens": 10,
    "gen_ai.usage.output_tokens": 20,
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
    "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}]',
    "tenant.id": "acme",
    "enduser.id": "alice",
    "genai_audit.tool": "hr_helpdesk",
}


@pytest.fixture
def make_span() -> Callable[..., ReadableSpan]:
    """Real SDK spans: ``make_span(**attribute_overrides)``; a value of None removes a key."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "test-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")

    def build(name: str = "openai.chat", **overrides: Any) -> ReadableSpan:
        attrs = {**GENAI_ATTRS, **{k.replace("__", "."): v for k, v in overrides.items()}}
        attrs = {k: v for k, v in attrs.items() if v is not None}
        exporter.clear()
        with tracer.start_as_current_span(name, attributes=attrs):
            pass
        return exporter.get_finished_spans()[-1]

    return build
