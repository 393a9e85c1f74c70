"""The one source of application time.

Everything that decides by "now" (maintenance schedules, retention and archive cut-offs,
checkpoint timers, expiry judgement in verify, budgets and rate-limit windows) asks a
``Clock`` instead of calling ``datetime.now`` or ``time.time`` itself, so that tests can
drive months of operation in seconds with a ``ManualClock``.

Two readings, as the standard library has them:

* ``now()``: wall time, a timezone-aware UTC ``datetime`` (what is stamped and compared
  with stored timestamps);
* ``monotonic()``: seconds for intervals and deadlines (what timers and rate windows use).

ClickHouse's own TTL merges run on the server's real clock; a ``ManualClock`` does not move
them (see docs/operations.md).
"""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that moves only when told to; both readings advance together.

    Thread-safe, so a background timer can read it while a test advances it.
    """

    def __init__(self, start: datetime | None = None, monotonic_start: float = 1_000.0) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._mono = monotonic_start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, delta: timedelta | float) -> datetime:
        """Move both readings forward by ``delta`` (a timedelta, or seconds)."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump wall time to ``moment`` (not earlier than now); monotonic follows."""
        if moment.tzinfo is None:
            raise ValueError("ManualClock.set needs a timezone-aware moment")
        self.advance(moment.astimezone(UTC) - self.now())

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
