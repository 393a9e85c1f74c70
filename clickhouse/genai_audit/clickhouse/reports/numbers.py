"""Numbers for people: money, counts, shares. Used by sections (figures) and renderers."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def money(value: Any) -> str:
    """``$1,234.57``; under $1, 4 decimals (6 under a cent) so small costs never read as 0."""
    amount = Decimal(value or 0)
    places = "0.01" if abs(amount) >= 1 or amount == 0 else \
        "0.0001" if abs(amount) >= Decimal("0.01") else "0.000001"
    return f"${amount.quantize(Decimal(places), ROUND_HALF_UP):,}"


def things(n: Any, noun: str) -> str:
    """``1 call``, ``2 calls``, ``1,204 interactions``."""
    return f"{int(n or 0):,} {noun}{'' if int(n or 0) == 1 else 's'}"


def count(value: Any) -> str:
    return f"{int(value or 0):,}"


def share(part: Any, whole: Any) -> str:
    """``12.5%`` of ``whole``; ``n/a`` when there is nothing to take a share of."""
    whole_f = float(whole or 0)
    if whole_f == 0:
        return "n/a"
    return f"{100.0 * float(part or 0) / whole_f:.1f}%"


def change(current: Any, previous: Any) -> str:
    """Month-over-month change: ``+12.5%``, ``-3.0%``, ``new`` or ``n/a``."""
    prev, cur = Decimal(previous or 0), Decimal(current or 0)
    if prev == 0:
        return "new" if cur > 0 else "n/a"
    return f"{float((cur - prev) / prev) * 100:+.1f}%"
