"""One OpenAI instrumentation for the whole session.

The openai instrumentation wraps the client once per ``instrument()``; instrumenting it
again after ``uninstrument()`` records streamed text twice. So it is instrumented once, with
a provider whose only processor forwards to whatever processors the running test installs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.context import Context
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider


class ForwardingProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.targets: list[SpanProcessor] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for target in list(self.targets):
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for target in list(self.targets):
            target.on_end(span)


class OpenAITracing:
    def __init__(self) -> None:
        self.forwarder = ForwardingProcessor()
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.forwarder)


@pytest.fixture(scope="session")
def openai_tracing() -> Iterator[OpenAITracing]:
    tracing = OpenAITracing()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider)
    yield tracing
    instrumentor.uninstrument()
