"""The attribute mapping table: which span attribute of which convention fills which field.

One table (``data/attribute_mapping.json``, shipped in the package; ``docs/attribute-mapping.md``
is rendered from it by ``render_markdown`` and a test keeps the two equal) covers the
OpenTelemetry GenAI conventions, current and deprecated, OpenInference, Traceloop and the
providers' own attributes. It is compiled once at import into plain tuples of keys per
field and typed readers (``read_int``, ``read_bool``, ``read_string_list``), so ``normalize``
pays a few dict lookups per field, nothing more.

A field's keys are tried in order; the first present *and readable* value wins (a string
``"False"`` is false, a JSON string of reasons is a list, an unreadable value is skipped).
A key ``attr#field`` is the top-level ``field`` of the JSON object in attribute ``attr``
(OpenInference keeps the request's ``stream`` and ``user`` in ``llm.invocation_parameters``
and the response id in ``output.value``); it is read only when the keys before it are
absent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

_UINT32_MAX = 2**32 - 1
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_TYPES = frozenset({"string", "lower", "int", "bool", "string_list", "messages_json", "text"})
_DIRECTIONS = frozenset({"input", "output"})
_PARTS = frozenset({"role", "content", "finish_reason"})


class MappingError(ValueError):
    """The mapping table is malformed; says which entry."""


@dataclass(frozen=True)
class FieldMapping:
    field: str
    type: str
    keys: tuple[tuple[str, str], ...]  # (attribute key, convention), in precedence order


@dataclass(frozen=True)
class IndexedMessages:
    pattern: str  # "gen_ai.prompt.{n}.{part}"
    direction: str  # input | output
    parts: Mapping[str, str]  # attribute suffix -> message part (role, content, finish_reason)
    convention: str


@dataclass(frozen=True)
class MappingTable:
    version: str
    types: Mapping[str, str]
    fields: Mapping[str, FieldMapping]
    indexed: tuple[IndexedMessages, ...]

    def keys(self, field: str) -> tuple[str, ...]:
        return tuple(k for k, _ in self.fields[field].keys)


def load_mapping(text: str | None = None) -> MappingTable:
    """The table from JSON text (default: the shipped ``data/attribute_mapping.json``)."""
    if text is None:
        text = resources.files("genai_audit.processor").joinpath(
            "data/attribute_mapping.json").read_text("utf-8")
    data = json.loads(text)
    fields: dict[str, FieldMapping] = {}
    for entry in data["fields"]:
        name, kind = str(entry["field"]), str(entry["type"])
        if kind not in _TYPES:
            raise MappingError(f"field {name!r}: unknown type {kind!r}")
        if name in fields:
            raise MappingError(f"field {name!r} listed twice")
        keys = tuple((str(k), str(c)) for k, c in entry["keys"])
        plain = ["#" not in k for k, _ in keys]
        if plain != sorted(plain, reverse=True):
            raise MappingError(f"field {name!r}: attr#field keys must follow the plain keys")
        fields[name] = FieldMapping(name, kind, keys)
    indexed = []
    for entry in data["indexed_messages"]:
        pattern = str(entry["pattern"])
        if pattern.count("{n}") != 1 or not pattern.endswith(".{part}"):
            raise MappingError(f"indexed pattern {pattern!r} needs one {{n}} and end in .{{part}}")
        if entry["direction"] not in _DIRECTIONS or not set(entry["parts"].values()) <= _PARTS:
            raise MappingError(f"indexed pattern {pattern!r}: bad direction or parts")
        indexed.append(IndexedMessages(pattern, str(entry["direction"]), dict(entry["parts"]),
                                       str(entry["convention"])))
    return MappingTable(str(data["version"]), dict(data["types"]), fields, tuple(indexed))


TABLE = load_mapping()
#: the ``attr#field`` keys: looked up in the attribute's JSON object (``json_field``)
JSON_KEYS = frozenset(k for f in TABLE.fields.values() for k, _ in f.keys if "#" in k)
_MAX_JSON_CHARS = 1_000_000


def json_field(attrs: Mapping[str, Any], key: str) -> Any:
    """For an ``attr#field`` key, that field of the JSON object in ``attr`` (None if absent,
    malformed or not a scalar). The table puts these keys after a field's plain ones, so
    readers try them only once every plain key was absent."""
    attr, _, name = key.partition("#")
    raw = attrs.get(attr)
    if not (isinstance(raw, str) and raw.startswith("{") and len(raw) <= _MAX_JSON_CHARS):
        return None
    try:
        parsed = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return None
    field = parsed.get(name) if isinstance(parsed, dict) else None
    return field if isinstance(field, str | int | float | bool) else None


def _field_keys(name: str) -> tuple[str, ...]:
    return TABLE.keys(name)


# -- compiled lookups (what normalize reads) -------------------------------------------------
TENANT_KEYS = _field_keys("tenant_id")
USER_KEYS = _field_keys("user_id")
SESSION_KEYS = _field_keys("session_id")
OPERATION_KEYS = _field_keys("operation_name")
PROVIDER_KEYS = _field_keys("provider")
MODEL_KEYS = _field_keys("model")
RESPONSE_MODEL_KEYS = _field_keys("response_model")
RESPONSE_ID_KEYS = _field_keys("response_id")
INPUT_TOKEN_KEYS = _field_keys("input_tokens")
OUTPUT_TOKEN_KEYS = _field_keys("output_tokens")
CACHE_READ_KEYS = _field_keys("cache_read_tokens")
CACHE_WRITE_KEYS = _field_keys("cache_write_tokens")
REASONING_KEYS = _field_keys("reasoning_tokens")
STREAMING_KEYS = _field_keys("is_streaming")
FINISH_REASON_KEYS = _field_keys("finish_reasons")
INPUT_JSON_KEYS = _field_keys("input_messages")
OUTPUT_JSON_KEYS = _field_keys("output_messages")
SYSTEM_JSON_KEYS = _field_keys("system_instructions")
INPUT_TEXT_KEYS = _field_keys("input_text")
OUTPUT_TEXT_KEYS = _field_keys("output_text")

#: A span carrying any of these is an LLM call: the provider, operation and request-model keys
#: of every convention (a response model alone does not make one).
GENAI_MARKERS: tuple[str, ...] = (*OPERATION_KEYS, *PROVIDER_KEYS,
                                  *(k for k in MODEL_KEYS if k != "gen_ai.response.model"))


def _indexed_regex(entries: Sequence[IndexedMessages]) -> re.Pattern[str]:
    alternatives = []
    for i, entry in enumerate(entries):
        head = re.escape(entry.pattern.split("{n}")[0])
        middle = re.escape(entry.pattern.split("{n}")[1][: -len("{part}")])
        parts = "|".join(re.escape(p) for p in sorted(entry.parts, key=len, reverse=True))
        alternatives.append(f"(?P<h{i}>{head})(?P<n{i}>\\d+){middle}(?P<p{i}>{parts})")
    return re.compile("^(?:" + "|".join(alternatives) + ")$")


_INDEXED_RE = _indexed_regex(TABLE.indexed)
#: What an indexed key starts with: a cheap pre-filter before the regex.
INDEXED_PREFIXES: tuple[str, ...] = tuple(sorted({e.pattern.split("{n}")[0]
                                                  for e in TABLE.indexed}))


def match_indexed(key: str) -> tuple[str, int, str] | None:
    """``(direction, index, part)`` for an indexed message key, else None."""
    match = _INDEXED_RE.match(key)
    if match is None:
        return None
    for i, entry in enumerate(TABLE.indexed):
        if match.group(f"h{i}") is not None:
            return (entry.direction, int(match.group(f"n{i}")),
                    entry.parts[match.group(f"p{i}")])
    return None  # pragma: no cover - one alternative always matched


# -- typed readers ----------------------------------------------------------------------------
# Each loops over the plain keys with ``attrs.get`` (an ``attr#field`` key is never an
# attribute's name, so it reads as absent there) and then, only if nothing was found and the
# field has such keys (always last), reads them as JSON fields.
def _values(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """Each present value among ``keys``, in order: the plain ones, then the JSON ones."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            yield value
    if keys and keys[-1] in JSON_KEYS:
        for key in keys:
            if key in JSON_KEYS and (value := json_field(attrs, key)) is not None:
                yield value


def read_int(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first readable non-negative integer among ``keys`` (capped at UInt32)."""
    get = attrs.get
    for key in keys:  # the hot path: plain keys, present ints
        value = get(key)
        if value.__class__ is int and value >= 0:
            return value if value <= _UINT32_MAX else _UINT32_MAX
        if value is not None:
            break  # anything else: the general loop below decides
    else:
        if not (keys and keys[-1] in JSON_KEYS):
            return None
    for value in _values(attrs, keys):
        if value.__class__ is int:  # the usual case (bool is a subclass: not this)
            if value >= 0:
                return value if value <= _UINT32_MAX else _UINT32_MAX
        elif isinstance(value, float) and math.isfinite(value) and value >= 0:
            return min(int(value), _UINT32_MAX)
        elif isinstance(value, str) and value.strip().isdigit():
            return min(int(value.strip()), _UINT32_MAX)
    return None


def as_bool(value: Any) -> bool | None:
    if value.__class__ is bool:
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    if value.__class__ is int and value in (0, 1):
        return bool(value)
    return None


def read_bool(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> bool | None:
    """The first readable boolean among ``keys``."""
    for value in _values(attrs, keys):
        if (parsed := as_bool(value)) is not None:
            return parsed
    return None


def read_string_list(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> list[str] | None:
    """The first present list of text among ``keys``; a JSON array string is that array."""
    for value in _values(attrs, keys):
        if isinstance(value, str):
            return _string_list_from_text(value)
        if isinstance(value, bytes):
            return [value.decode("utf-8", "replace")]
        try:
            items = list(value)
        except TypeError:
            return [str(value)]
        out: list[str] = []
        for item in items:
            out.extend(_string_list_from_text(item) if isinstance(item, str) else [str(item)])
        return out
    return None


def _string_list_from_text(text: str) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            return [text]
        if isinstance(parsed, list):
            return [p if isinstance(p, str) else json.dumps(p) for p in parsed]
    return [text]


# -- docs ---------------------------------------------------------------------------------------
def render_markdown(table: MappingTable = TABLE) -> str:
    """The table as the Markdown section ``docs/attribute-mapping.md`` embeds."""
    out = [f"Mapping table version `{table.version}`.", "",
           "| record field | type | attribute (in precedence order) | convention |",
           "| --- | --- | --- | --- |"]
    for mapping in table.fields.values():
        for i, (key, convention) in enumerate(mapping.keys):
            label = (f"`{mapping.field}`", f"{mapping.type}") if i == 0 else ("", "")
            out.append(f"| {label[0]} | {label[1]} | `{key}` | {convention} |")
    out += ["", "Indexed messages (read when no messages JSON is given; `{n}` is the message's "
            "position):", "",
            "| attribute | direction | part | convention |", "| --- | --- | --- | --- |"]
    for entry in table.indexed:
        for suffix, part in entry.parts.items():
            key = entry.pattern.replace("{part}", suffix)
            out.append(f"| `{key}` | {entry.direction} | {part} | {entry.convention} |")
    out += ["", "Types:", ""]
    out += [f"- `{name}`: {text}" for name, text in table.types.items()]
    return "\n".join(out) + "\n"
