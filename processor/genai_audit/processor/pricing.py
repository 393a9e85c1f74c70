"""Cost attribution from a versioned price table.

The table ships as package data (``data/pricing.json``, prices in USD per 1M tokens for
input, cached input and output). A user file (``GENAI_AUDIT_PRICING_FILE`` or the
``pricing_file`` setting) overrides or adds models and its ``version`` is what records
carry in ``pricing_version``. A model matches exactly, else by the longest known prefix
(``gpt-4o-2024-08-06`` -> ``gpt-4o``); an unknown model costs 0 and is flagged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from genai_audit.processor.record import AuditRecord, Flag

_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("0.000000001")  # Decimal(18, 9) in the store


class PricingError(ValueError):
    """A price file that cannot be used; says which file and which entry."""


@dataclass(frozen=True)
class Price:
    input: Decimal
    cached_input: Decimal
    output: Decimal


@dataclass(frozen=True)
class PriceTable:
    version: str
    prices: Mapping[str, Price]
    _resolved: dict[str, Price | None] = field(default_factory=dict, compare=False, repr=False)

    def lookup(self, model: str) -> Price | None:
        if model not in self._resolved:
            name = model.lower()
            candidates = [key for key in self.prices if name == key or name.startswith(key + "-")]
            self._resolved[model] = self.prices[max(candidates, key=len)] if candidates else None
        return self._resolved[model]

    def cost(self, model: str, input_tokens: int, output_tokens: int,
             cached_tokens: int = 0) -> Decimal | None:
        price = self.lookup(model)
        if price is None:
            return None
        cached = min(cached_tokens, input_tokens)
        total = ((input_tokens - cached) * price.input + cached * price.cached_input
                 + output_tokens * price.output) / _MILLION
        return total.quantize(_QUANTUM)


def load_price_table(override: str | Path | None = None) -> PriceTable:
    """The shipped table, with ``override`` (a JSON file of the same shape) on top."""
    shipped = resources.files("genai_audit.processor").joinpath("data/pricing.json")
    base = _parse(json.loads(shipped.read_text("utf-8")), "built-in pricing.json")
    if override is None:
        return base
    path = Path(override)
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise PricingError(f"pricing file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise PricingError(f"pricing file {path}: invalid JSON ({exc.msg} at line {exc.lineno})"
                           ) from exc
    extra = _parse(data, str(path))
    return PriceTable(version=f"{base.version}+{extra.version}",
                      prices={**base.prices, **extra.prices})


def _parse(data: Any, source: str) -> PriceTable:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PricingError(f"{source}: expected an object with a 'models' object")
    version = str(data.get("version") or "custom")
    prices: dict[str, Price] = {}
    for model, entry in data["models"].items():
        if not isinstance(entry, dict):
            raise PricingError(f"{source}: model {model!r} must map to an object of prices")
        try:
            values = {k: Decimal(str(entry[k])) for k in ("input", "output")}
            values["cached_input"] = Decimal(str(entry.get("cached_input", entry["input"])))
        except KeyError as exc:
            raise PricingError(f"{source}: model {model!r} lacks price {exc.args[0]!r}") from exc
        except InvalidOperation as exc:
            raise PricingError(f"{source}: model {model!r} has a non-numeric price") from exc
        if any(v < 0 for v in values.values()):
            raise PricingError(f"{source}: model {model!r} has a negative price")
        prices[str(model).lower()] = Price(**values)
    return PriceTable(version=version, prices=prices)


class PricingStage:
    name = "price"
    failure_flag = Flag.UNKNOWN_MODEL

    def __init__(self, table: PriceTable) -> None:
        self.table = table

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            model = record.response_model or record.model
            cost = self.table.cost(model, record.prompt_tokens, record.response_tokens,
                                   record.cached_tokens)
            if cost is None and record.response_model:
                cost = self.table.cost(record.model, record.prompt_tokens,
                                       record.response_tokens, record.cached_tokens)
            record.pricing_version = self.table.version
            if cost is None:
                record.total_cost = Decimal(0)
                record.flag(Flag.UNKNOWN_MODEL)
            else:
                record.total_cost = cost
