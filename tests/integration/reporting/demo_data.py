"""Demo-like audit data for the report, Grafana and cookbook tests.

Records go through the real path: real OTel SDK spans -> ``default_pipeline`` (with an
in-memory stand-in for the redaction stage, which lands in its own issue) ->
``InteractionWriter`` -> the embedded store. ``SPECS`` is the ground truth the tests compute
expected numbers from, independently of the SQL under test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter
from genai_audit.config import Settings
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.pseudonym import pseudonym_of
from genai_audit.processor.record import AuditRecord, Flag

PRICES = {"gpt-4o": (Decimal("2.50"), Decimal("10.00")),
          "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60"))}  # USD per 1M tokens (pricing.json)
EMAIL = re.compile(r"[\w.]+@[\w.]+")
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
HIPAA_REGIONS = {"us-hipaa"}


@dataclass(frozen=True)
class Spec:
    at: datetime
    tenant: str | None
    user: str
    tool: str
    feature: str
    model: str
    prompt_tokens: int
    response_tokens: int
    prompt: str
    region: str = "us"
    data_class: str = ""
    latency_ms: int = 120

    @property
    def emails(self) -> int:
        return len(EMAIL.findall(self.prompt))

    @property
    def ssns(self) -> int:
        return len(SSN.findall(self.prompt))

    @property
    def has_pii(self) -> bool:
        return bool(self.emails or self.ssns) and not self.explodes

    @property
    def explodes(self) -> bool:
        return "EXPLODE" in self.prompt

    @property
    def redacted_before_llm(self) -> bool:
        return self.has_pii and self.feature != "post_hoc_scan"

    @property
    def cost(self) -> Decimal:
        if self.model not in PRICES:
            return Decimal(0)
        p_in, p_out = PRICES[self.model]
        return (p_in * self.prompt_tokens + p_out * self.response_tokens) / Decimal(1_000_000)

    @property
    def tenant_id(self) -> str:
        return self.tenant or "_unattributed"


def _specs() -> list[Spec]:
    base = datetime(2024, 3, 25, 9, 0, tzinfo=UTC)
    tools = [("contract_review", "clause_extraction"), ("hr_helpdesk", "escalation_triage"),
             ("supply_chain_forecast", "demand_plan")]
    users = {"acme": ["alice", "bob", "carol"], "globex": ["dave", "erin"]}
    specs: list[Spec] = []
    for i in range(36):  # 2024-03-25 .. 2024-04-12: crosses the seed's 2024-04-01 and a month
        tenant = "acme" if i % 3 else "globex"
        tool, feature = tools[(i // 2) % len(tools)]
        user = users[tenant][(i // 3) % len(users[tenant])]
        prompt = f"question {i} about {tool}"
        if i % 5 == 0:
            prompt += f" mail me at person{i}@example.com"
        if i % 7 == 0:
            prompt += " my SSN is 123-45-6789"
        specs.append(Spec(
            at=base + timedelta(hours=13 * i), tenant=tenant, user=user, tool=tool,
            feature=feature, model="gpt-4o-mini" if i % 4 == 0 else "gpt-4o",
            prompt_tokens=100 + 7 * i, response_tokens=50 + 3 * i, prompt=prompt,
            latency_ms=100 + 10 * i))
    at = base + timedelta(days=2, hours=1)
    specs += [
        # detected only after the call (collector-tier scan): PII reached the LLM
        Spec(at, "acme", "alice", "hr_helpdesk", "post_hoc_scan", "gpt-4o", 40, 10,
             "forward to boss@acme.test please"),
        # a model without a price: cost 0, flagged unknown_model
        Spec(at + timedelta(hours=1), "acme", "bob", "contract_review", "clause_extraction",
             "mystery-llm-9", 500, 250, "summarise clause 4"),
        # the redaction stage fails on this one: content withheld, flagged redaction_failed
        Spec(at + timedelta(hours=2), "globex", "dave", "hr_helpdesk", "escalation_triage",
             "gpt-4o", 30, 20, "EXPLODE the redactor"),
        # PHI: one over a HIPAA route, one not
        Spec(at + timedelta(hours=3), "acme", "carol", "patient_intake", "triage", "gpt-4o",
             60, 30, "patient reports chest pain", region="us-hipaa", data_class="phi"),
        Spec(at + timedelta(hours=4), "acme", "carol", "patient_intake", "triage", "gpt-4o",
             60, 30, "patient follow-up", region="eu", data_class="phi"),
        # no tenant in baggage: lands under _unattributed
        Spec(at + timedelta(hours=5), None, "mallory", "hr_helpdesk", "", "gpt-4o", 10, 10,
             "who am I"),
    ]
    return specs


SPECS: list[Spec] = _specs()


class StandInRedaction:
    """In-memory stand-in for the redaction stage: emails and SSNs, counted and replaced."""

    name = "redact"
    failure_flag = Flag.REDACTION_FAILED

    def process(self, records: Sequence[AuditRecord]) -> None:
        # Fail before touching any record: the pipeline retries a failed batch record by
        # record, so a stage must not leave half-redacted records behind.
        if any("EXPLODE" in json.dumps(r.content.input_messages) for r in records):
            raise RuntimeError("redactor crashed")
        for record in records:
            text = json.dumps(record.content.input_messages)
            counts = {"EMAIL_ADDRESS": len(EMAIL.findall(text)),
                      "US_SSN": len(SSN.findall(text))}
            counts = {k: v for k, v in counts.items() if v}
            record.has_pii_detected = bool(counts)
            record.pii_redacted_before_llm = bool(counts) and \
                record.feature_name != "post_hoc_scan"
            record.pii_entity_counts = counts
            record.hipaa_compliant_route = record.region in HIPAA_REGIONS
            for message in record.content.input_messages:
                for part in message.get("parts", []):
                    if isinstance(part.get("content"), str):
                        part["content"] = SSN.sub("[REDACTED]",
                                                  EMAIL.sub("[REDACTED]", part["content"]))


def build_spans(specs: Sequence[Spec]) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "demo-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("report-tests")
    for s in specs:
        attrs = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": s.model, "gen_ai.response.model": s.model,
            "gen_ai.response.id": f"chatcmpl-{s.at.timestamp():.0f}",
            "gen_ai.usage.input_tokens": s.prompt_tokens,
            "gen_ai.usage.output_tokens": s.response_tokens,
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": s.prompt}]}]),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]),
            "enduser.id": s.user, "genai_audit.tool": s.tool,
            "genai_audit.feature": s.feature, "genai_audit.region": s.region,
            "genai_audit.data_class": s.data_class,
        }
        if s.tenant:
            attrs["tenant.id"] = s.tenant
        start = int(s.at.timestamp() * 1e9)
        span = tracer.start_span("chat " + s.model, attributes=attrs, start_time=start)
        span.end(end_time=start + s.latency_ms * 1_000_000)
    return list(exporter.get_finished_spans())


def write_specs(store: Store, keys: LocalKeyStore, specs: Sequence[Spec]) -> None:
    # Records from 2024: keep them for 10 years so the TTL does not drop them at insert.
    # The stand-in takes the real redaction stage's place: its counts are what the report
    # tests check.
    stages = [s for s in default_pipeline(Settings(retention_days=3650), keys).stages
              if s.name != StandInRedaction.name]
    pipeline = RecordPipeline([stages[0], StandInRedaction(), *stages[1:]])
    ledger = Ledger(store, keys.signing_key(), row_columns=COLUMNS)  # as the exporter does
    InteractionWriter(store, ledger).write(pipeline.build(build_spans(specs)))
    ledger.close()
    # The records are dated 2024 but signed now: date the checkpoints as if signed when the
    # records were written, so period-bound views (report, Grafana) see them.
    store.command("ALTER TABLE ledger_checkpoints UPDATE created_at = "
                  "(SELECT max(event_timestamp) FROM interactions) WHERE 1",
                  settings={"mutations_sync": 2})


def user_key(keys: LocalKeyStore, tenant: str, user: str) -> str:
    key = pseudonym_of(keys, tenant, user)
    assert key is not None, f"{user} of {tenant} was never written"
    return key


PERIOD = (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
