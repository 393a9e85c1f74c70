"""Retention policies, the retention stage and the policy cache (no store needed)."""

from __future__ import annotations

import pytest

from genai_audit.clickhouse.errors import StoreUnavailable
from genai_audit.clickhouse.policies import DEFAULT_TENANT, StorePolicies, resolve
from genai_audit.processor.retention import (
    PolicyError,
    RetentionPolicy,
    RetentionStage,
    StaticPolicies,
)


class FakePolicyStore:
    """Answers the policy query from a dict; can be made unreachable."""

    def __init__(self, policies: dict[str, tuple[int, int]]) -> None:
        self.policies, self.down, self.reads = policies, False, 0

    def rows(self, sql, parameters=None, settings=None):
        self.reads += 1
        if self.down:
            raise StoreUnavailable("connection refused")
        return [(t, d, c) for t, (d, c) in self.policies.items()]


def test_policy_validation():
    assert RetentionPolicy(30).effective_content_days == 30
    assert RetentionPolicy(30, 7).effective_content_days == 7
    for bad in ((0, 0), (10_951, 0), (30, 31), (30, -1)):
        with pytest.raises(PolicyError):
            RetentionPolicy(*bad)


def test_stage_stamps_each_tenant(make_span):
    from genai_audit.processor.normalize import normalize

    records = [normalize(make_span()), normalize(make_span(**{"tenant.id": "clinic"}))]
    stage = RetentionStage(StaticPolicies(RetentionPolicy(365),
                                          {"clinic": RetentionPolicy(2190, 30)}))
    stage.process(records)
    assert [(r.tenant_id, r.retention_days, r.content_retention_days) for r in records] == [
        ("acme", 365, 365), ("clinic", 2190, 30)]


def test_resolution_order():
    policies = {"acme": RetentionPolicy(10), DEFAULT_TENANT: RetentionPolicy(20)}
    fallback = RetentionPolicy(30)
    assert resolve(policies, "acme", fallback).days == 10
    assert resolve(policies, "other", fallback).days == 20
    assert resolve({}, "other", fallback).days == 30


def test_store_policies_cache_refresh_and_outage():
    now = [0.0]
    fake = FakePolicyStore({"acme": (10, 0)})
    source = StorePolicies(fake, RetentionPolicy(365), refresh_s=30, clock=lambda: now[0])  # type: ignore[arg-type]
    assert source.policy_for("acme").days == 10 and fake.reads == 1
    fake.policies["acme"] = (20, 5)
    assert source.policy_for("acme").days == 10 and fake.reads == 1  # cached
    now[0] = 31
    assert source.policy_for("acme") == RetentionPolicy(20, 5) and fake.reads == 2
    fake.down = True
    now[0] = 62
    assert source.policy_for("acme") == RetentionPolicy(20, 5)  # last known stays in force
    cold = StorePolicies(fake, RetentionPolicy(365), clock=lambda: 0.0)  # type: ignore[arg-type]
    assert cold.policy_for("acme").days == 365  # never read: the configured default
