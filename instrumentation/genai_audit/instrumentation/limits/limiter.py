"""Per-call admission: rate limits (token buckets) and the month's budget.

``admit`` runs before a guarded call leaves the process: it takes one request and the
call's estimated input tokens from every bucket the call falls under (the tenant's, the
tenant's tool's if it has limits of its own, the user's if per-user limits are set), all
or none, and checks the budgets. ``settle`` runs after the answer: it corrects the token
buckets by the actual usage and adds the call's cost (priced with the records' versioned
price table) to the month's spend.

Budgets are per calendar month (UTC, from the injected clock). A soft threshold (percent of
the budget) raises an alarm once per month: the first call admitted after the spend crossed
it logs ``ALARM`` and its record carries the ``budget_alarm`` flag. With
``budget_hard_stop`` a spent budget refuses every call until the month rolls over or the
budget is raised (``genai-audit budget set``, recorded with who and why). A raised budget
re-arms the thresholds: each alarm is once per month and budget.

When the shared store (Redis) fails or misses its deadline, ``on_redis_failure`` decides:
``open`` admits the call, logs ``ALARM`` (at most every 10 s) and flags its record
``limiter_unavailable``; ``closed`` refuses it (429, ``limiter_unavailable``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import quote

from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.config import Settings
from genai_audit.instrumentation.limits.backends import (
    Backend,
    BackendUnavailable,
    MemoryBackend,
    RedisBackend,
    Take,
)
from genai_audit.instrumentation.limits.errors import (
    BUDGET_EXCEEDED,
    LIMITER_UNAVAILABLE,
    RATE_LIMITED,
)
from genai_audit.instrumentation.limits.settings import LimitSettings, Scope
from genai_audit.processor.pricing import PriceTable, load_price_table
from genai_audit.safelog import log_failure

_log = logging.getLogger(__name__)

MONTH_TTL_S = 40 * 86_400  # a month's spend and alarms outlive the month a little
ALARM_EVERY_S = 10.0


@dataclass(frozen=True)
class Refusal:
    reason: str  # rate_limited | budget_exceeded | limiter_unavailable
    detail: str  # which limit (never content)
    retry_after: float | None
    budget_alarms: tuple[int, ...] = ()  # thresholds this call found crossed (its record says)


@dataclass
class Admission:
    """An admitted call: what ``settle`` corrects, and what its record says."""

    tenant: str
    tool: str
    estimate: int
    token_buckets: list[Take] = field(default_factory=list)
    budget_keys: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # limiter_unavailable
    budget_alarms: list[int] = field(default_factory=list)  # thresholds (percent) crossed


def _part(value: str) -> str:
    return quote(value, safe="")


class Limiter:
    """Decides per call; thread-safe. ``backend`` defaults to Redis when ``redis_url`` is
    set, else to this process's memory."""

    def __init__(self, settings: LimitSettings, backend: Backend | None = None,
                 prices: PriceTable | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        if backend is None:
            backend = (RedisBackend(settings.redis_url, settings.redis_timeout_ms)
                       if settings.redis_url else MemoryBackend())
        self.backend = backend
        # the records' price table: the pricing_file setting (flag > env > file > built-in)
        self.prices = prices if prices is not None else load_price_table(
            Settings.load().pricing_file)
        self.clock = clock
        self._user_key = settings.user_key or os.urandom(32)
        self._last_alarm = -math.inf

    # -- before the call -------------------------------------------------------------
    def admit(self, tenant: str, tool: str, user: str | None, estimate: int
              ) -> Admission | Refusal:
        tenant_scope, tool_scope, user_scope = self.settings.for_call(tenant, tool)
        admission = Admission(tenant, tool, max(0, estimate))
        takes: list[Take] = []
        owners = [(f"{_part(tenant)}:*", tenant_scope, f"tenant {tenant!r}"),
                  (f"{_part(tenant)}:tool:{_part(tool)}", tool_scope, f"tool {tool!r}")]
        if user and user_scope is not None:
            owners.append((f"{_part(tenant)}:user:{self._pseudonym(user)}", user_scope,
                           "this user"))
        for key, scope, _ in owners:
            if scope is not None:
                takes += self._takes(key, scope, admission)
        try:  # budgets first: a call refused for its budget takes nothing from the buckets
            refusal = self._check_budgets(admission, tenant_scope, tool_scope)
            if refusal is None and takes:
                wait = self.backend.take(takes, self._now())
                if wait > 0:
                    refusal = Refusal(RATE_LIMITED, self._which(owners, wait), wait,
                                      tuple(admission.budget_alarms))
        except BackendUnavailable as exc:
            return self._unavailable(admission, exc)
        return refusal or admission

    def _takes(self, key: str, scope: Scope, admission: Admission) -> list[Take]:
        out = []
        if scope.requests is not None:
            out.append(Take(f"rl:{key}:req", scope.requests, scope.requests / scope.interval_s,
                            1))
        if scope.tokens is not None:
            take = Take(f"rl:{key}:tok", scope.tokens, scope.tokens / scope.interval_s,
                        admission.estimate)
            out.append(take)
            admission.token_buckets.append(take)
        return out

    def _which(self, owners: list[tuple[str, Scope | None, str]], wait: float) -> str:
        limits = []
        for _, scope, name in owners:
            if scope is not None and scope.limited:
                parts = [f"{n} {what}" for n, what in ((scope.requests, "requests"),
                                                         (scope.tokens, "tokens"))
                         if n is not None]
                limits.append(f"{name}: {' and '.join(parts)} per {scope.interval_s} s")
        if math.isinf(wait):
            return "the call's estimated tokens exceed the limit (" + "; ".join(limits) + ")"
        return "; ".join(limits) + f"; retry in {wait:.1f} s"

    def _check_budgets(self, admission: Admission, tenant_scope: Scope,
                       tool_scope: Scope | None) -> Refusal | None:
        month = self.clock.now().strftime("%Y-%m")
        for tool, scope in (("*", tenant_scope), (admission.tool, tool_scope)):
            if scope is None or scope.budget_usd is None:
                continue
            owner = f"{_part(admission.tenant)}:{_part(tool)}"
            spend_key = f"spend:{owner}:{month}"
            admission.budget_keys.append(spend_key)
            spent_f, override = self.backend.values([spend_key, f"budget:{owner}"])
            spent = Decimal(str(spent_f or 0.0))
            budget = scope.budget_usd if override is None else Decimal(str(override))
            where = "the tenant" if tool == "*" else f"its tool {tool!r}"
            for pct in scope.budget_thresholds:
                if spent >= budget * pct / 100 and self.backend.first(
                        f"alarm:{owner}:{month}:{budget}:{pct}", MONTH_TTL_S):
                    admission.budget_alarms.append(pct)
                    _log.error("ALARM budget: tenant %r, %s, reached %d%% of %s USD in %s",
                               admission.tenant, where, pct, budget, month)
            if scope.budget_hard_stop and spent >= budget:
                return Refusal(BUDGET_EXCEEDED, f"{where} has spent {spent:.2f} of its "
                               f"{budget} USD budget for {month}",
                               self._seconds_to_next_month(),
                               tuple(admission.budget_alarms))
        return None

    def budget(self, tenant: str, tool: str = "*") -> Decimal | None:
        """The budget in force for ``tenant`` (``tool`` '*': the whole tenant): a recorded
        override, else the settings' (None: no budget)."""
        tenant_scope, tool_scope, _ = self.settings.for_call(tenant, tool)
        scope = tenant_scope if tool == "*" else tool_scope
        override = self.backend.values([f"budget:{_part(tenant)}:{_part(tool)}"])[0]
        if override is not None:
            return Decimal(str(override))
        return None if scope is None else scope.budget_usd

    def set_budget(self, tenant: str, tool: str, usd: Decimal) -> None:
        """Override a budget in the limiter's store (every replica sharing it, at once).
        Record the change with who and why: ``genai-audit budget set`` does both."""
        self.backend.set_value(f"budget:{_part(tenant)}:{_part(tool)}", float(usd))

    def _unavailable(self, admission: Admission, exc: BackendUnavailable) -> Admission | Refusal:
        now = self.clock.monotonic()
        if now - self._last_alarm >= ALARM_EVERY_S:
            self._last_alarm = now
            log_failure(_log, f"ALARM rate limiter store unavailable (on_redis_failure="
                              f"{self.settings.on_redis_failure})", exc)
        if self.settings.on_redis_failure == "closed":
            return Refusal(LIMITER_UNAVAILABLE, "the rate limiter's store is unavailable and "
                           "the limits fail closed", None)
        admission.flags.append(LIMITER_UNAVAILABLE)
        admission.token_buckets.clear()
        admission.budget_keys.clear()
        return admission

    # -- after the call --------------------------------------------------------------
    def settle(self, admission: Admission, model: str, prompt_tokens: int,
               completion_tokens: int, cached_tokens: int = 0) -> None:
        """Correct the token buckets by the actual usage and add the cost to the month's
        spend. Never raises: a failure is logged (by type)."""
        try:
            delta = prompt_tokens + completion_tokens - admission.estimate
            if admission.token_buckets and delta:
                self.backend.take([Take(t.key, t.capacity, t.rate, delta)
                                   for t in admission.token_buckets], self._now(), force=True)
            if admission.budget_keys:
                cost = self.prices.cost(model, prompt_tokens, completion_tokens, cached_tokens)
                if cost:
                    for key in admission.budget_keys:
                        self.backend.add_spend(key, float(cost), MONTH_TTL_S)
        except BackendUnavailable as exc:
            log_failure(_log, "rate limiter could not record a call's usage", exc)

    def close(self) -> None:
        self.backend.close()

    # -- helpers ---------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _pseudonym(self, user: str) -> str:
        return hmac.new(self._user_key, user.encode(), hashlib.sha256).hexdigest()[:32]

    def _seconds_to_next_month(self) -> float:
        now = self.clock.now()
        nxt = now.replace(year=now.year + (now.month == 12), month=now.month % 12 + 1, day=1,
                          hour=0, minute=0, second=0, microsecond=0)
        return (nxt - now).total_seconds()
