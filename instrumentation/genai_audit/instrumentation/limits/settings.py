"""The ``[limits]`` table: rate limits and budgets per tenant, tool and user.

One precedence, as for every setting: argument (flag) > environment
(``GENAI_AUDIT_LIMITS_<KEY>``, base layer and backend keys) > the ``[limits]`` table of the
config file (``GENAI_AUDIT_CONFIG``, ``--config`` or ``./genai-audit.toml``) > default (no
limit at all)::

    [limits]
    redis_url = "redis://127.0.0.1:6379/0"  # shared by every replica; unset: in-process
    redis_timeout_ms = 100                  # deadline of one Redis round trip
    on_redis_failure = "open"               # open (alarm + flagged record) | closed (refuse)
    interval_s = 60                         # the window the limits below refer to
    requests = 600                          # per tenant and interval (each tenant its own)
    tokens = 2000000                        # input+output tokens per tenant and interval
    user_requests = 60                      # per user (pseudonym) of a tenant
    budget_usd = 1000                       # per tenant and calendar month (UTC)
    budget_thresholds = [50, 80, 100]       # percent: an alarm once each per month
    budget_hard_stop = false                # true: refuse calls once the budget is spent
    [limits.tenants.acme]                   # this tenant
    requests = 100
    [limits.tools.contract_review]          # this tool, in every tenant (its own buckets)
    tokens = 50000
    [limits.tenants.acme.tools.triage]      # this tenant's tool
    budget_usd = 50

Tenant-level keys (base < tenant) give each tenant a bucket and a budget; tool-level keys
(tool < tenant+tool) add a bucket and a budget per (tenant, tool); ``user_*`` keys resolve
over every layer and give each user of a tenant a bucket. Per-user buckets are keyed by an
HMAC of the user id under ``GENAI_AUDIT_LIMITS_USER_KEY`` (required with Redis, so every
replica derives the same pseudonym; in process a random key is used): no plain user id is
kept in Redis or in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from genai_audit.config import SettingsError, config_path, parse_bool, read_toml

ENV_PREFIX = "GENAI_AUDIT_LIMITS_"
ENV_USER_KEY = "GENAI_AUDIT_LIMITS_USER_KEY"
DEFAULT_THRESHOLDS = (50, 80, 100)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number > 0, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a whole number > 0, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"expected a whole number > 0, got {value!r}")
    return number


def _usd(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"expected an amount in USD, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"expected an amount in USD, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"expected an amount in USD > 0, got {value!r}")
    return amount


def _thresholds(value: Any) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a list of percentages, got {value!r}")
    out = sorted({_positive_int(item) for item in items if str(item).strip()})
    if not out or out[-1] > 1000:
        raise ValueError(f"expected percentages between 1 and 1000, got {value!r}")
    return tuple(out)


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text
    return parse


def _redis_url(value: Any) -> str | None:
    text = str(value).strip()
    if not text or text.lower() in ("off", "none"):
        return None
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")
    return text


_LAYER: dict[str, Callable[[Any], Any]] = {
    "interval_s": _positive_int,
    "requests": _positive_int,
    "tokens": _positive_int,
    "user_requests": _positive_int,
    "user_tokens": _positive_int,
    "budget_usd": _usd,
    "budget_thresholds": _thresholds,
    "budget_hard_stop": parse_bool,
}
#: what a tool's scope takes from its tenant's (its own limits and budget are its own)
_INHERITED = frozenset({"interval_s", "budget_thresholds", "budget_hard_stop"})
_BACKEND: dict[str, Callable[[Any], Any]] = {
    "redis_url": _redis_url,
    "redis_timeout_ms": _positive_int,
    "on_redis_failure": _choice("open", "closed"),
}


@dataclass(frozen=True)
class Scope:
    """The limits of one bucket owner (a tenant, a tenant's tool, or a user)."""

    interval_s: int = 60
    requests: int | None = None
    tokens: int | None = None
    budget_usd: Decimal | None = None
    budget_thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    budget_hard_stop: bool = False

    @property
    def limited(self) -> bool:
        return self.requests is not None or self.tokens is not None


@dataclass(frozen=True)
class LimitSettings:
    """Every layer of the ``[limits]`` table, validated; ``for_call`` resolves a call."""

    base: Mapping[str, Any] = field(default_factory=dict)
    tools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tenants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tenant_tools: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    redis_url: str | None = None
    redis_timeout_ms: int = 100
    on_redis_failure: str = "open"
    user_key: bytes | None = field(default=None, repr=False)
    source: str = "defaults"
    _cache: dict[tuple[str, str], tuple[Scope, Scope | None, Scope | None]] = field(
        default_factory=dict, compare=False, repr=False)

    @property
    def active(self) -> bool:
        return bool(self.base or self.tools or self.tenants or self.tenant_tools)

    def for_call(self, tenant: str, tool: str) -> tuple[Scope, Scope | None, Scope | None]:
        """(tenant scope, tool scope or None, user scope or None) of a call."""
        key = (tenant, tool)
        cached = self._cache.get(key)
        if cached is None:
            tenant_layer = {**self.base, **self.tenants.get(tenant, {})}
            tool_layers = (self.tools.get(tool), self.tenant_tools.get(key))
            tool_scope = None
            if any(tool_layers):
                merged = {k: v for k, v in tenant_layer.items() if k in _INHERITED}
                for layer in tool_layers:
                    merged.update(layer or {})
                tool_scope = _scope(merged)
            everything = {**tenant_layer, **(self.tools.get(tool) or {}),
                          **(self.tenant_tools.get(key) or {})}
            user = Scope(interval_s=everything.get("interval_s", 60),
                         requests=everything.get("user_requests"),
                         tokens=everything.get("user_tokens"))
            cached = self._cache[key] = (_scope(tenant_layer), tool_scope,
                                         user if user.limited else None)
        return cached


def _scope(layer: Mapping[str, Any]) -> Scope:
    return Scope(**{k: v for k, v in layer.items() if not k.startswith("user_")})


def load_limits(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> LimitSettings:
    """Read and validate the limits (see the module doc); errors name key and source."""
    env = os.environ if env is None else env
    table, source = _read_table(path, env)
    unknown = sorted(set(table) - set(_LAYER) - set(_BACKEND) - {"tools", "tenants"})
    if unknown:
        raise SettingsError(f"limits: unknown key(s) {', '.join(unknown)} (from {source})")
    backend = {k: _parse(_BACKEND, k, v, f"limits.{k}", source)
               for k, v in table.items() if k in _BACKEND}
    base = _layer({k: v for k, v in table.items() if k in _LAYER}, "limits", source)
    for key in (*_LAYER, *_BACKEND):
        name = ENV_PREFIX + key.upper()
        if name in env:
            target = backend if key in _BACKEND else base
            target[key] = _parse({**_LAYER, **_BACKEND}, key, env[name], name, "env")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in _LAYER and key not in _BACKEND:
            raise SettingsError(f"limits: unknown setting {key!r} (from argument)")
        target = backend if key in _BACKEND else base
        target[key] = _parse({**_LAYER, **_BACKEND}, key, value, f"limits.{key}", "argument")
    tools = {name: _layer(_table(raw, f"limits.tools.{name}", source), f"limits.tools.{name}",
                          source)
             for name, raw in _table(table.get("tools", {}), "limits.tools", source).items()}
    tenants: dict[str, dict[str, Any]] = {}
    tenant_tools: dict[tuple[str, str], dict[str, Any]] = {}
    for name, raw in _table(table.get("tenants", {}), "limits.tenants", source).items():
        where = f"limits.tenants.{name}"
        entry = dict(_table(raw, where, source))
        for tool, raw_tool in _table(entry.pop("tools", {}), where + ".tools", source).items():
            tool_where = f"{where}.tools.{tool}"
            tenant_tools[(name, tool)] = _layer(_table(raw_tool, tool_where, source),
                                                tool_where, source)
        tenants[name] = _layer(entry, where, source)
    user_key = env.get(ENV_USER_KEY, "").encode() or None
    settings = LimitSettings(base=base, tools=tools, tenants=tenants, tenant_tools=tenant_tools,
                             user_key=user_key, source=source, **backend)
    per_user = any("user_requests" in layer or "user_tokens" in layer for layer in
                   (base, *tools.values(), *tenants.values(), *tenant_tools.values()))
    if per_user and settings.redis_url and not user_key:
        raise SettingsError(f"limits: per-user limits shared through Redis need "
                            f"{ENV_USER_KEY} (the same secret on every replica)")
    return settings


def _read_table(path: str | Path | None, env: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    file, required = config_path(env, path)
    data = read_toml(file, required)
    if data is None:
        return {}, "defaults"
    source = f"file {file}"
    root = data.get("genai_audit", data)
    return dict(_table(root.get("limits", {}), "limits", source)), source


def _table(value: Any, where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: expected a table, got {value!r} (from {source})")
    return value


def _layer(raw: Mapping[str, Any], where: str, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _LAYER:
            raise SettingsError(f"{where}.{key}: unknown key; expected one of "
                                f"{', '.join(sorted(_LAYER))} (from {source})")
        out[key] = _parse(_LAYER, key, value, f"{where}.{key}", source)
    return out


def _parse(parsers: Mapping[str, Callable[[Any], Any]], key: str, value: Any, where: str,
           source: str) -> Any:
    try:
        return parsers[key](value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{where}: {exc} (from {source})") from None
