"""Cost attribution from a versioned price table.

The table ships as package data (``data/pricing.json``, prices in USD per 1M tokens for
input, cached input (cache reads), cache writes, output and reasoning; cache reads and
writes default to the input rate and reasoning to the output rate, where a provider charges
no differently).

Token accounting follows the OpenTelemetry GenAI conventions: input tokens include the
cache reads and cache writes, output tokens include the reasoning tokens. Each part is
priced at its own rate; a count that exceeds its total (a producer that reports the parts
apart) is clamped for the part it is in and the rest priced on top.

A user file (``GENAI_AUDIT_PRICING_FILE`` or the
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
    cache_write: Decimal | None = None  # None: the input rate
    reasoning: Decimal | None = None  # None: the output rate


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

    def cost(self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
             *, cache_write_tokens: int = 0, reasoning_tokens: int = 0) -> Decimal | None:
        """The call's cost; None for an unknown model. ``cached_tokens`` are cache reads."""
        price = self.lookup(model)
        if price is None:
            return None
        read = min(cached_tokens, input_tokens)
        write = min(cache_write_tokens, input_tokens - read)
        plain_in = input_tokens - read - write
        extra_write = cache_write_tokens - write  # reported apart from the input count
        reasoning = min(reasoning_tokens, output_tokens)
        extra_reasoning = reasoning_tokens - reasoning
        write_rate = price.input if price.cache_write is None else price.cache_write
        reason_rate = price.output if price.reasoning is None else price.reasoning
        total = (plain_in * price.input + read * price.cached_input
                 + (write + extra_write) * write_rate
                 + (output_tokens - reasoning) * price.output
                 + (reasoning + extra_reasoning) * reason_rate) / _MILLION
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
            optional = {k: Decimal(str(entry[k])) for k in ("cache_write", "reasoning")
                        if k in entry}
        except KeyError as exc:
            raise PricingError(f"{source}: model {model!r} lacks price {exc.args[0]!r}") from exc
        except InvalidOperation as exc:
            raise PricingError(f"{source}: model {model!r} has a non-numeric price") from exc
        if any(v < 0 for v in (*values.values(), *optional.values())):
            raise PricingError(f"{source}: model {model!r} has a negative price")
        prices[str(model).lower()] = Price(**values, **optional)
    return PriceTable(version=version, prices=prices)


class PricingStage:
    name = "price"
    failure_flag = Flag.UNKNOWN_MODEL

    def __init__(self, table: PriceTable) -> None:
        self.table = table

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            model = record.response_model or record.model
            cost = self._cost(model, record)
            if cost is None and record.response_model:
                cost = self._cost(record.model, record)
            record.pricing_version = self.table.version
            if cost is None:
                record.total_cost = Decimal(0)
                record.flag(Flag.UNKNOWN_MODEL)
            else:
                record.total_cost = cost

    def _cost(self, model: str, r: AuditRecord) -> Decimal | None:
        return self.table.cost(model, r.prompt_tokens, r.response_tokens, r.cached_tokens,
                               cache_write_tokens=r.cache_write_tokens,
                               reasoning_tokens=r.reasoning_tokens)
