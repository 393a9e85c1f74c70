"""Rate limits and budgets with the in-process backend and a ManualClock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from genai_audit.clock import ManualClock
from genai_audit.config import SettingsError
from genai_audit.instrumentation.limits import Limiter, LimitSettings, load_limits
from genai_audit.instrumentation.limits.limiter import Admission, Refusal
from genai_audit.processor.pricing import load_price_table


def limiter(clock: ManualClock, **base: object) -> Limiter:
    return Limiter(load_limits(env={}, overrides=base, path=None), clock=clock,
                   prices=load_price_table())


def test_requests_per_interval_refill_at_the_configured_rate() -> None:
    clock = ManualClock()
    lim = limiter(clock, requests=3, interval_s=60)
    verdicts = [lim.admit("acme", "t", None, 10) for _ in range(5)]
    assert [isinstance(v, Admission) for v in verdicts] == [True, True, True, False, False]
    refusal = verdicts[3]
    assert isinstance(refusal, Refusal) and refusal.reason == "rate_limited"
    assert refusal.retry_after == pytest.approx(20.0)  # one request per 20 s comes back
    assert "tenant 'acme'" in refusal.detail and "3 requests per 60 s" in refusal.detail
    assert isinstance(lim.admit("globex", "t", None, 10), Admission)  # its own bucket
    clock.advance(20)
    assert isinstance(lim.admit("acme", "t", None, 10), Admission)
    assert isinstance(lim.admit("acme", "t", None, 10), Refusal)


def test_tokens_are_estimated_then_corrected_by_actual_usage() -> None:
    clock = ManualClock()
    lim = limiter(clock, tokens=1000, interval_s=60)
    first = lim.admit("acme", "t", None, 100)
    assert isinstance(first, Admission)
    lim.settle(first, "gpt-4o", prompt_tokens=100, completion_tokens=850)  # 950 used in all
    assert isinstance(lim.admit("acme", "t", None, 100), Refusal)  # 50 left, 100 asked
    small = lim.admit("acme", "t", None, 40)
    assert isinstance(small, Admission)
    lim.settle(small, "gpt-4o", prompt_tokens=5, completion_tokens=0)  # 35 given back
    assert isinstance(lim.admit("acme", "t", None, 45), Admission)
    too_big = lim.admit("acme", "t", None, 5000)
    assert isinstance(too_big, Refusal) and "exceed the limit" in too_big.detail


def test_tool_and_user_scopes_have_buckets_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[limits]\nrequests = 100\nuser_requests = 2\n"
                    "[limits.tenants.acme.tools.triage]\nrequests = 1\n")
    lim = Limiter(load_limits(path, env={}), clock=ManualClock())
    assert isinstance(lim.admit("acme", "triage", "u1", 1), Admission)
    refused = lim.admit("acme", "triage", "u2", 1)
    assert isinstance(refused, Refusal) and "tool 'triage'" in refused.detail
    assert isinstance(lim.admit("acme", "other", "u1", 1), Admission)
    assert isinstance(lim.admit("acme", "other", "u1", 1), Refusal)  # u1's 2 per minute
    assert isinstance(lim.admit("acme", "other", "u2", 1), Admission)


def test_budget_alarms_once_per_threshold_hard_stop_and_rollover(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(datetime(2026, 1, 30, 12, tzinfo=UTC))
    # gpt-4o: 2.50 USD per 1M input tokens -> 1M input tokens cost 2.50 USD
    lim = limiter(clock, budget_usd="10", budget_hard_stop=True)
    alarms: list[list[int]] = []
    with caplog.at_level(logging.ERROR):
        for _ in range(4):  # 2.50 USD per call: 25%, 50%, 75%, 100% after calls 1-4
            admission = lim.admit("acme", "t", None, 0)
            assert isinstance(admission, Admission)
            alarms.append(admission.budget_alarms)
            lim.settle(admission, "gpt-4o", prompt_tokens=1_000_000, completion_tokens=0)
    # spend before each call: 0, 2.5, 5 (50%), 7.5: a crossing alarms on the next call, once
    assert alarms == [[], [], [50], []]
    refused = lim.admit("acme", "t", None, 0)  # 10 USD spent: 80% and 100%, and the stop
    assert isinstance(refused, Refusal) and refused.reason == "budget_exceeded"
    assert refused.budget_alarms == (80, 100)
    assert "10" in refused.detail and "2026-01" in refused.detail
    assert refused.retry_after == pytest.approx(timedelta(hours=36).total_seconds())
    assert [r.getMessage().split(" reached ")[1].split("%")[0]
            for r in caplog.records if "ALARM budget" in r.getMessage()] == ["50", "80", "100"]
    assert isinstance(lim.admit("acme", "t", None, 0), Refusal)  # no second 100% alarm
    assert sum("ALARM budget" in r.getMessage() for r in caplog.records) == 3
    clock.set(datetime(2026, 2, 1, tzinfo=UTC))  # the month rolls over
    fresh = lim.admit("acme", "t", None, 0)
    assert isinstance(fresh, Admission) and fresh.budget_alarms == []


def test_budget_without_hard_stop_only_alarms() -> None:
    clock = ManualClock()
    lim = limiter(clock, budget_usd="1")
    first = lim.admit("acme", "t", None, 0)
    assert isinstance(first, Admission)
    lim.settle(first, "gpt-4o", prompt_tokens=2_000_000, completion_tokens=0)  # 5 USD
    second = lim.admit("acme", "t", None, 0)
    assert isinstance(second, Admission) and second.budget_alarms == [50, 80, 100]


def test_settings_precedence_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[limits]\nrequests = 5\ntokens = 100\n[limits.tenants.acme]\nrequests = 7\n")
    env = {"GENAI_AUDIT_CONFIG": str(path), "GENAI_AUDIT_LIMITS_TOKENS": "200"}
    settings = load_limits(env=env, overrides={"requests": 9})
    tenant, tool, user = settings.for_call("globex", "t")
    assert (tenant.requests, tenant.tokens, tool, user) == (9, 200, None, None)
    assert settings.for_call("acme", "t")[0].requests == 7  # the tenant's own wins
    assert load_limits(env={}).active is False  # nothing configured: no limiter
    path.write_text("[limits]\nrequest = 5\n")
    with pytest.raises(SettingsError, match=r"limits: unknown key\(s\) request .*c.toml"):
        load_limits(path, env={})
    path.write_text("[limits.tenants.acme]\nbudget_usd = -3\n")
    with pytest.raises(SettingsError, match=r"limits.tenants.acme.budget_usd: .*> 0"):
        load_limits(path, env={})
    with pytest.raises(SettingsError, match="GENAI_AUDIT_LIMITS_ON_REDIS_FAILURE"):
        load_limits(env={"GENAI_AUDIT_LIMITS_ON_REDIS_FAILURE": "maybe"})
    path.write_text("[limits]\nuser_requests = 5\nredis_url = 'redis://127.0.0.1:1/0'\n")
    with pytest.raises(SettingsError, match="GENAI_AUDIT_LIMITS_USER_KEY"):
        load_limits(path, env={})
    assert LimitSettings().active is False
    assert Decimal(str(load_limits(env={}, overrides={"budget_usd": "12.5"}).base[
        "budget_usd"])) == Decimal("12.5")
