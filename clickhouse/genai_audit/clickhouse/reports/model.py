"""The report as data: what every renderer (Markdown, HTML, CSV, JSON) formats.

A ``Report`` is built once from the store (``build.build_report``) and then rendered by pure
functions; nothing in here touches the store. Values in tables are plain Python values
(``Decimal`` for money, ``date``/``datetime`` for time) so each renderer decides how to
print them and no number is rounded before the CSV/JSON output.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from genai_audit.clickhouse.reports import numbers

REPORT_FORMAT_VERSION = 1


class Status(enum.StrEnum):
    """How a section came out, in the words a compliance officer reads first."""

    OK = "ok"  # the control held over the period
    ATTENTION = "attention"  # something needs a human look (failures, PII not redacted...)
    NOT_AVAILABLE = "not_available"  # this store cannot answer yet (feature not installed)
    NOT_CHECKED = "not_checked"  # the store could answer, but this report did not check

    @property
    def label(self) -> str:
        return {"ok": "OK", "attention": "Needs attention",
                "not_available": "Not available", "not_checked": "Not checked"}[self.value]


@dataclass(frozen=True)
class Period:
    """Half-open UTC interval ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("report period bounds must be timezone-aware (UTC)")
        if self.end <= self.start:
            raise ValueError(f"report period is empty: {self.start.isoformat()} is not "
                             f"before {self.end.isoformat()}")


@dataclass
class Table:
    """One result table. ``total_rows`` > ``len(rows)`` means the query was capped."""

    key: str  # stable name: CSV file name, JSON key
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    note: str = ""
    total_rows: int | None = None  # when known
    complete: bool = True  # False: rows were capped (total_rows may be unknown)

    @property
    def caption(self) -> str:
        """The note, or what a capped table leaves out when it has none."""
        if self.note or not self.truncated or self.total_rows is None:
            return self.note
        return f"Showing {len(self.rows):,} of {self.total_rows:,}."

    @property
    def truncated(self) -> bool:
        return not self.complete or (self.total_rows is not None
                                     and self.total_rows > len(self.rows))


@dataclass
class Chart:
    """A chart a renderer may draw: one label axis, one or more numeric series."""

    key: str
    title: str
    kind: str  # "bar" (categories) or "line" (time buckets)
    labels: list[str]
    series: dict[str, list[float]]
    unit: str = ""
    gaps: list[tuple[int, int]] = field(default_factory=list)  # label index ranges, no data


@dataclass
class Figure:
    """A headline figure: ``value`` formatted for people; ``number`` the exact value for
    machines (the JSON and CSV reports print it as a number), None for a text figure."""

    label: str
    value: str
    number: int | float | Decimal | None = None
    unit: str = ""  # "USD", "%" or "" (a count)

    @classmethod
    def of_count(cls, label: str, n: Any) -> Figure:
        return cls(label, numbers.count(n), int(n or 0))

    @classmethod
    def of_money(cls, label: str, amount: Any) -> Figure:
        return cls(label, numbers.money(amount), Decimal(amount or 0), "USD")

    @classmethod
    def of_share(cls, label: str, part: Any, whole: Any) -> Figure:
        text = numbers.share(part, whole)
        exact = None if not float(whole or 0) else 100.0 * float(part or 0) / float(whole)
        return cls(label, text, exact, "%")


@dataclass
class Section:
    key: str
    title: str
    status: Status
    summary: str  # one or two plain sentences: what this means for the auditor
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # caveats, missing features, wiring


@dataclass
class Provenance:
    """Where the report came from; printed on page one and embedded in every format."""

    store: str  # DSN without password
    database: str
    tenant: str | None  # None: all tenants
    period: Period
    generated_at: datetime
    schema_version: int
    tool_version: str
    checkpoint: str  # ledger checkpoint the integrity check used, or why there is none
    verify_result: str
    report_format_version: int = REPORT_FORMAT_VERSION


@dataclass
class Report:
    title: str
    provenance: Provenance
    sections: list[Section]

    def section(self, key: str) -> Section:
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(key)

    @property
    def overall(self) -> Status:
        statuses = {s.status for s in self.sections}
        return Status.ATTENTION if Status.ATTENTION in statuses else Status.OK
