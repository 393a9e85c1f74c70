"""Per-day series on a continuous time axis, and the gaps in them.

A chart that plots only the days that have records, evenly spaced, draws a 23-day logging
outage as a flat line between two neighbouring points. Here every day of the period is a
point (zero where nothing was recorded), and runs of empty days between the first and the
last record are named, so the chart shows the hole and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from genai_audit.clickhouse.reports.facts import Day

MAX_DAYS = 731  # longer periods start the axis at the first record's day
MIN_GAP_DAYS = 2  # a single quiet day (a weekend's Sunday) is not worth a note


@dataclass(frozen=True)
class Gap:
    first: date  # first day without records
    last: date  # last day without records (inclusive)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@dataclass(frozen=True)
class Timeline:
    days: list[date]
    interactions: list[float]
    cost: list[float]
    gaps: list[Gap]

    def gap_indexes(self) -> list[tuple[int, int]]:
        """Each gap as (first index, last index) into ``days``."""
        origin = self.days[0] if self.days else date.min
        return [((g.first - origin).days, (g.last - origin).days) for g in self.gaps]


def daily_timeline(days: list[Day], start: datetime, end: datetime) -> Timeline:
    """Every UTC day of ``[start, end)`` (at most ``MAX_DAYS``, ending at the period's end),
    with the recorded days' counts and costs, zero elsewhere; gaps of at least
    ``MIN_GAP_DAYS`` empty days between the first and the last recorded day."""
    first_day, last_day = start.date(), (end - timedelta(microseconds=1)).date()
    if (last_day - first_day).days + 1 > MAX_DAYS:
        first_day = max(first_day, days[0].day if days else last_day)
        first_day = max(first_day, last_day - timedelta(days=MAX_DAYS - 1))
    by_day = {d.day: d for d in days}
    axis = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    interactions = [float(by_day[d].interactions) if d in by_day else 0.0 for d in axis]
    cost = [float(by_day[d].cost) if d in by_day else 0.0 for d in axis]
    return Timeline(axis, interactions, cost, _gaps(axis, by_day))


def _gaps(axis: list[date], by_day: dict[date, Day]) -> list[Gap]:
    recorded = [i for i, d in enumerate(axis) if d in by_day and by_day[d].interactions]
    gaps: list[Gap] = []
    for before, after in pairwise(recorded):
        if after - before - 1 >= MIN_GAP_DAYS:
            gaps.append(Gap(axis[before + 1], axis[after - 1]))
    return gaps


def format_gap(gap: Gap) -> str:
    return (f"No records on {gap.days} consecutive days, {gap.first:%Y-%m-%d} to "
            f"{gap.last:%Y-%m-%d}: a logging outage or a pause in traffic; check the "
            "exporter's or gateway's health for that window (docs/operations.md).")
