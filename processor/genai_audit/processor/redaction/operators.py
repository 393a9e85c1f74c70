"""What a detected value becomes: a registry of small operator classes.

* ``replace`` (default): a typed, numbered placeholder, ``<PERSON_1>``;
* ``mask``: the value's letters and digits become ``*``, keeping the last 4 of a number
  (``**** **** **** 4242``) so a support agent can still tell cards apart;
* ``hmac``: ``<PERSON:1f0c9a2b7d3e>``, a keyed HMAC-SHA256 under the tenant's redaction
  secret (keystore, never the store): the same value links across records of one tenant,
  and reveals nothing without the key;
* ``drop``: the value is removed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from genai_audit.processor.redaction.placeholders import Placeholders

HMAC_HEX_CHARS = 12
KEEP_LAST = 4
_NUMERIC = frozenset({"CREDIT_CARD", "ACCOUNT_NUMBER", "IBAN_CODE", "US_SSN", "PHONE_NUMBER"})


@dataclass
class OperatorContext:
    """What an operator may use for one interaction."""

    placeholders: Placeholders
    secret: Callable[[], bytes]  # the tenant's redaction secret, fetched only if needed


class Operator(Protocol):
    name: ClassVar[str]

    def apply(self, entity: str, value: str, ctx: OperatorContext) -> str: ...


class Replace:
    name: ClassVar[str] = "replace"

    def apply(self, entity: str, value: str, ctx: OperatorContext) -> str:
        return ctx.placeholders.placeholder(entity, value)


class Mask:
    name: ClassVar[str] = "mask"

    def apply(self, entity: str, value: str, ctx: OperatorContext) -> str:
        alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
        keep = set(alnum[-KEEP_LAST:]) if entity in _NUMERIC and len(alnum) > 8 else set()
        return "".join(ch if (i in keep or not ch.isalnum()) else "*"
                       for i, ch in enumerate(value))


class Hmac:
    name: ClassVar[str] = "hmac"

    def apply(self, entity: str, value: str, ctx: OperatorContext) -> str:
        normalized = " ".join(value.split()).casefold().encode("utf-8")
        digest = hmac.new(ctx.secret(), entity.encode() + b"\0" + normalized, hashlib.sha256)
        return f"<{entity}:{digest.hexdigest()[:HMAC_HEX_CHARS]}>"


class Drop:
    name: ClassVar[str] = "drop"

    def apply(self, entity: str, value: str, ctx: OperatorContext) -> str:
        return ""


OPERATORS: dict[str, Operator] = {op.name: op for op in (Replace(), Mask(), Hmac(), Drop())}


def get_operator(name: str) -> Operator:
    try:
        return OPERATORS[name]
    except KeyError:
        raise ValueError(f"unknown redaction operator {name!r}; "
                         f"expected one of {', '.join(sorted(OPERATORS))}") from None
