"""Per-day charts on a continuous axis (issue 17): a 23-day logging outage used to be drawn
as a flat line between two evenly spaced points; now every day is on the axis, empty days
are zero, and the outage is named."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from genai_audit.clickhouse.reports.facts import Day
from genai_audit.clickhouse.reports.model import Chart
from genai_audit.clickhouse.reports.render.svg import line_chart
from genai_audit.clickhouse.reports.timeline import MAX_DAYS, daily_timeline, format_gap

START = datetime(2026, 3, 1, tzinfo=UTC)


def _days(*offsets: int) -> list[Day]:
    return [Day(date(2026, 3, 1) + timedelta(days=o), 10, Decimal("0.5")) for o in offsets]


def test_every_day_of_the_period_is_on_the_axis_and_an_outage_is_a_gap():
    recorded = _days(0, 1, 2, 26, 27)  # nothing from day 3 to day 25: 23 days
    line = daily_timeline(recorded, START, START + timedelta(days=31))
    assert len(line.days) == 31 and line.days[0] == date(2026, 3, 1)
    assert line.interactions[3:26] == [0.0] * 23 and line.interactions[26] == 10.0
    [gap] = line.gaps
    assert (gap.first, gap.last, gap.days) == (date(2026, 3, 4), date(2026, 3, 26), 23)
    assert "23 consecutive days, 2026-03-04 to 2026-03-26" in format_gap(gap)
    assert line.gap_indexes() == [(3, 25)]


def test_quiet_edges_and_single_days_are_not_gaps():
    line = daily_timeline(_days(5, 7, 8), START, START + timedelta(days=20))
    assert line.gaps == []  # one empty day between records; days before/after are not gaps


def test_a_long_period_starts_at_the_first_record():
    line = daily_timeline(_days(1000), START, START + timedelta(days=1200))
    assert len(line.days) <= MAX_DAYS and line.days[-1] == (START + timedelta(days=1199)).date()


def test_the_svg_shades_the_gap():
    line = daily_timeline(_days(0, 1, 2, 26, 27), START, START + timedelta(days=31))
    svg = line_chart(Chart("c", "Interactions per day", "line",
                           [d.isoformat() for d in line.days],
                           {"interactions": line.interactions}, gaps=line.gap_indexes()))
    assert svg.count('class="gap"') == 1 and "no records 2026-03-04 to 2026-03-26" in svg
