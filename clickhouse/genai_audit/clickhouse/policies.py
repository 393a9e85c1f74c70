"""Per-tenant retention policies in ``retention_policies`` (append-only, every change kept).

A change is a new row carrying who made it, when, why, and the values it replaced. The
current policy of a tenant is its latest row; tenant ``*`` is the store-wide default, and a
tenant with no row falls back to it, then to the configured default (``retention_days``).
``StorePolicies`` is the pipeline's ``PolicySource``: it caches the table for a short while so
the retention stage does not query the store per batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.store import Store
from genai_audit.processor.retention import RetentionPolicy

_log = logging.getLogger(__name__)

DEFAULT_TENANT = "*"
TABLE = "retention_policies"
_CURRENT_SQL = """
SELECT tenant_id, argMax(retention_days, changed_at), argMax(content_retention_days, changed_at)
FROM retention_policies GROUP BY tenant_id
"""


@dataclass(frozen=True)
class PolicyChange:
    tenant_id: str
    policy: RetentionPolicy
    previous: RetentionPolicy | None
    changed_by: str
    reason: str
    changed_at: datetime


def current_policies(store: Store) -> dict[str, RetentionPolicy]:
    """Every tenant's current policy (``*`` is the default), as recorded in the store."""
    return {str(t): RetentionPolicy(int(d), int(c)) for t, d, c in store.rows(_CURRENT_SQL)}


def policy_history(store: Store, tenant_id: str | None = None) -> list[PolicyChange]:
    """Every recorded change, oldest first (one tenant's, or all)."""
    rows = store.rows(
        "SELECT tenant_id, retention_days, content_retention_days, previous_retention_days, "
        "previous_content_retention_days, changed_by, reason, changed_at FROM retention_policies "
        "WHERE {all:Bool} OR tenant_id = {tenant:String} ORDER BY changed_at, tenant_id",
        {"all": tenant_id is None, "tenant": tenant_id or ""})
    return [PolicyChange(str(t), RetentionPolicy(int(d), int(c)),
                         None if pd is None else RetentionPolicy(int(pd), int(pc or 0)),
                         str(by), str(why), at)
            for t, d, c, pd, pc, by, why, at in rows]


def set_policy(store: Store, tenant_id: str, policy: RetentionPolicy, *, changed_by: str,
               reason: str) -> PolicyChange:
    """Record a new policy for ``tenant_id`` (``*``: the default). Applies to new records."""
    if not tenant_id.strip():
        raise ValueError("tenant must not be empty (use '*' for the default policy)")
    if not changed_by.strip():
        raise ValueError("a policy change needs the name of who made it")
    if not reason.strip():
        raise ValueError("a policy change needs a reason")
    previous = current_policies(store).get(tenant_id)
    store.insert(TABLE, [[tenant_id, policy.days, policy.content_days,
                          None if previous is None else previous.days,
                          None if previous is None else previous.content_days,
                          changed_by, reason]],
                 ["tenant_id", "retention_days", "content_retention_days",
                  "previous_retention_days", "previous_content_retention_days",
                  "changed_by", "reason"])
    return policy_history(store, tenant_id)[-1]


def resolve(policies: dict[str, RetentionPolicy], tenant_id: str,
            fallback: RetentionPolicy) -> RetentionPolicy:
    return policies.get(tenant_id) or policies.get(DEFAULT_TENANT) or fallback


class StorePolicies:
    """``PolicySource`` over the store's ``retention_policies``, refreshed every ``refresh_s``.

    ``load`` reads the table: the store's own (default) or, in a gateway worker process,
    the store owner's answer over its socket (the worker cannot open the store). Either way
    the policies are the store's: there is no second policy source to drift from it.

    If the table cannot be read, the last known policies stay in force (or the fallback
    before the first read): a record is never lost or withheld because the policy table was
    briefly unreachable, and the insert that follows will surface a real outage anyway.
    """

    def __init__(self, store: Store | None, fallback: RetentionPolicy, *,
                 refresh_s: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 load: Callable[[], dict[str, RetentionPolicy]] | None = None) -> None:
        if load is None and store is None:
            raise ValueError("StorePolicies needs a store or a loader of its table")
        self.store = store
        self.fallback = fallback
        self.refresh_s = refresh_s
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._policies: dict[str, RetentionPolicy] = {}
        self._loaded_at: float | None = None

    def policy_for(self, tenant_id: str) -> RetentionPolicy:
        with self._lock:
            return resolve(self._current(), tenant_id, self.fallback)

    def table(self) -> dict[str, RetentionPolicy]:
        """The recorded policies as last read (what a worker process asks its owner for)."""
        with self._lock:
            return dict(self._current())

    def _current(self) -> dict[str, RetentionPolicy]:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self.refresh_s:
            try:
                self._policies = (self._load() if self._load is not None
                                  else current_policies(self._require_store()))
            except StoreError as exc:
                _log.warning("retention policies unreadable (%s); keeping the last known ones",
                             exc.code)
            self._loaded_at = now
        return self._policies

    def _require_store(self) -> Store:
        assert self.store is not None  # checked in __init__
        return self.store
