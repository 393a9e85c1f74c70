"""Shared bench helpers: medians, real SDK spans, a scratch embedded store."""

from __future__ import annotations

import atexit
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import InteractionWriter
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.keystore import KeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline

PROMPT = ("Please summarize the attached quarterly vendor review for the procurement team, "
          "highlighting delivery delays, price changes and open contractual questions. ") * 2


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def genai_spans(n: int, tenants: int = 4) -> list[ReadableSpan]:
    """``n`` real, ended SDK spans shaped like the openai instrumentation's."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for i in range(n):
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.response.id": f"chatcmpl-{i}", "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 80, "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"'
                                     + PROMPT + f' #{i}"}}]}}]',
            "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text",'
                                      '"content":"Noted: ' + PROMPT + '"}]}]',
            "tenant.id": f"tenant-{i % tenants}", "enduser.id": f"user-{i % 97}",
            "genai_audit.tool": "contract_review" if i % 2 else "hr_helpdesk",
        }
        with tracer.start_as_current_span("openai.chat", attributes=attrs):
            pass
    return list(exporter.get_finished_spans())


# The two pipelines benches compare:
# * spine: what issue 2 builds (normalize, pseudonymize, render, content commitments, price,
#   retention, one insert with a deduplication token): no redaction, encryption or ledger;
# * production: the default pipeline with all of them (redaction optional, it dominates).
PIPELINES = ("spine", "production")
SPINE_SKIPS = frozenset({"redact", "encrypt"})


def pipeline_exporter(name: str, settings: Settings, store: Store, keys: KeyStore, *,
                      redaction: bool = True) -> ClickHouseSpanExporter:
    """The exporter of pipeline ``name`` (see ``PIPELINES``) over ``store``."""
    skip = SPINE_SKIPS if name == "spine" else frozenset()
    if not redaction:
        skip = skip | {"redact"}
    base = default_pipeline(settings, keys)
    # the event joiner stays (empty: events off, the default path, one check per batch)
    stages = RecordPipeline((s for s in base.stages if s.name not in skip),
                            joiner=base.joiner)
    writer = InteractionWriter(store) if name == "spine" else None  # spine: no ledger
    return ClickHouseSpanExporter(settings, store=store, keys=keys, writer=writer,
                                  pipeline=stages)


def scratch_dir(prefix: str = "genai-audit-bench-") -> str:
    """A temporary directory removed when the bench exits (registered before any store
    opens, so it runs after the embedded engine has closed its files)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def scratch_dsn() -> str:
    return "chdb://" + scratch_dir()


def fresh_database() -> str:
    return f"bench_{uuid.uuid4().hex[:10]}"


def fresh_store(dsn: str) -> Store:
    """A new, migrated database of its own in the store at ``dsn``."""
    store = Store.open(dsn, fresh_database())
    migrate(store)
    return store


def ratio_line(name: str, value: float, unit: str, baseline_name: str, baseline: float,
               ratio: float, target: str) -> str:
    return (f"{name}: {value:,.1f} {unit} | {baseline_name}: {baseline:,.1f} {unit} | "
            f"ratio {ratio:.2f} (target {target})")
