"""Stamp each record with its tenant's retention, which the table's TTLs enforce.

``retention_days`` drops the whole row when it passes; ``content_retention_days`` (never
longer) blanks the content columns earlier. The policy comes from a ``PolicySource``: the
store-backed one (``genai_audit.clickhouse.policies.StorePolicies``) in production, a
``StaticPolicies`` when no store is at hand. A stamped row keeps its retention: a later policy
change applies to new records only (see docs/retention.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from genai_audit.config import MAX_RETENTION_DAYS as MAX_DAYS  # 30 years; columns are UInt16
from genai_audit.processor.record import AuditRecord, Flag


class PolicyError(ValueError):
    """A retention policy that cannot be used."""


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a tenant's records are kept. ``content_days`` 0 means "as long as the row"."""

    days: int
    content_days: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MAX_DAYS:
            raise PolicyError(f"retention must be 1..{MAX_DAYS} days, got {self.days}")
        if not 0 <= self.content_days <= self.days:
            raise PolicyError(f"content retention must be 0 (same as the record) or "
                              f"1..{self.days} days, got {self.content_days}")

    @property
    def effective_content_days(self) -> int:
        return self.content_days or self.days


class PolicySource(Protocol):
    def policy_for(self, tenant_id: str) -> RetentionPolicy:
        """The policy that applies to a record of ``tenant_id`` written now."""
        ...


class StaticPolicies:
    """Fixed policies: per-tenant overrides over one default."""

    def __init__(self, default: RetentionPolicy,
                 tenants: Mapping[str, RetentionPolicy] | None = None) -> None:
        self.default = default
        self.tenants = dict(tenants or {})

    def policy_for(self, tenant_id: str) -> RetentionPolicy:
        return self.tenants.get(tenant_id, self.default)


class RetentionStage:
    name = "retention"
    failure_flag = Flag.CONTENT_WITHHELD

    def __init__(self, policies: PolicySource) -> None:
        self.policies = policies

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            policy = self.policies.policy_for(record.tenant_id)
            record.retention_days = policy.days
            record.content_retention_days = policy.effective_content_days
