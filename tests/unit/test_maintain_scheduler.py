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
