"""The gateway's maintenance schedule: runs the job repeatedly, survives a failing pass."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from genai_audit.clickhouse.maintain import MaintenanceReport, MaintenanceScheduler


def test_scheduler_runs_until_stopped_and_survives_failures():
    calls: list[int] = []
    third = threading.Event()

    def job() -> MaintenanceReport:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store briefly down")
        if len(calls) >= 3:
            third.set()
        return MaintenanceReport(started_at=datetime.now(UTC))

    scheduler = MaintenanceScheduler(job, interval_s=0.01).start()
    assert third.wait(5)
    scheduler.stop()
    count = len(calls)
    assert count >= 3 and scheduler.last is not None and scheduler.last.ok
    threading.Event().wait(0.05)
    assert len(calls) == count  # stopped means stopped


def test_scheduler_rejects_a_bad_interval():
    with pytest.raises(ValueError, match="interval"):
        MaintenanceScheduler(lambda: MaintenanceReport(datetime.now(UTC)), 0)


def test_scheduler_runs_when_the_injected_clock_says_so_and_counts_failures():
    from genai_audit.clock import ManualClock

    clock = ManualClock()
    outcomes = iter([MaintenanceReport(clock.now(), errors=["archive: config_error: x"]),
                     RuntimeError("store gone")])

    def job() -> MaintenanceReport:
        outcome = next(outcomes, None)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome or MaintenanceReport(clock.now())

    scheduler = MaintenanceScheduler(job, interval_s=600, clock=clock)  # thread not started
    assert scheduler.run_due() is None  # the first pass is one interval after start
    clock.advance(599)
    assert scheduler.run_due() is None
    clock.advance(1)
    failed = scheduler.run_due()
    assert failed is not None and not failed.ok
    assert "error archive: config_error" in failed.summary()
    assert scheduler.run_due() is None  # the next one is an interval later
    clock.advance(600)
    assert scheduler.run_due() is None  # the job raised: no report, schedule intact
    clock.advance(600)
    assert scheduler.run_due() is not None and scheduler.last is not None and scheduler.last.ok
    assert scheduler.stats == {"maintenance_runs": 3, "maintenance_failures": 2}
