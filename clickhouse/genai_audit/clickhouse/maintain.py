"""One maintenance pass (``genai-audit maintain``), and a scheduler for long-running owners.

Order matters: holds are swept first (records that fall under a hold are copied before their
TTL can drop them), then retention is enforced (expired records never reach the archive),
then the archive runs and, when it wrote something, is verified.

``run_maintenance`` is for cron or a Kubernetes CronJob (through the CLI) against a server;
whichever process owns the store (the in-process exporter's, or the gateway's store owner:
never its workers) runs it on an interval with ``MaintenanceScheduler``, which the
composition root (``genai_audit.processor.compose``) builds and the owner starts. Each pass
is logged, counted, and recorded in ``control_events`` (a failed one is a control failure in
the report).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from genai_audit.clickhouse.archive import RUNS, ArchiveRun, archive, default_cutoff
from genai_audit.clickhouse.archive_location import location_from_settings
from genai_audit.clickhouse.archive_verify import VerifyResult, verify_archive
from genai_audit.clickhouse.control_events import MAINTENANCE, ControlEvents
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.holds import sweep_holds
from genai_audit.clickhouse.retention import EnforcementResult, enforce_retention
from genai_audit.clickhouse.store import Store
from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.config import Settings
from genai_audit.keystore import KeyStore, KeyStoreError

_log = logging.getLogger(__name__)


@dataclass
class MaintenanceReport:
    started_at: datetime
    held_rows_copied: int = 0
    retention: EnforcementResult | None = None
    archive: ArchiveRun | None = None
    verification: VerifyResult | None = None
    errors: list[str] = field(default_factory=list)  # a step that could not run

    @property
    def ok(self) -> bool:
        return not self.errors and (self.verification is None or self.verification.ok)

    def summary(self) -> str:
        """One line for the log and ``control_events``: counts and error codes, no content."""
        parts = [f"holds copied {self.held_rows_copied}"]
        if self.retention is not None:
            parts.append(f"retention expired {self.retention.rows_expired} rows in "
                         f"{len(self.retention.partitions)} partitions")
        if self.archive is not None:
            parts.append(f"archive wrote {len(self.archive.written)} objects "
                         f"({self.archive.rows} rows)")
        if self.verification is not None and not self.verification.ok:
            parts.append("archive verification FAILED")
        parts += ["error " + ":".join(e.split(":")[:2]) for e in self.errors]  # step: code
        return "; ".join(parts)


def run_maintenance(store: Store, keys: KeyStore, settings: Settings, *,
                    archive_url: str | None = None, verify: bool = True,
                    settle_seconds: int = 60, clock: Clock = SYSTEM_CLOCK) -> MaintenanceReport:
    """Sweep holds, enforce retention, archive (if a URL is configured) and verify, once.

    ``clock`` gives the pass its time (the archive's hot-window cut-off); the TTLs it applies
    run on the engine's own clock. A failing step is recorded in ``errors`` and the later
    steps still run, except that the archive is skipped when retention could not be
    enforced."""
    now = clock.now()
    report = MaintenanceReport(started_at=now)
    try:
        report.held_rows_copied = sweep_holds(store)
    except StoreError as exc:
        report.errors.append(f"holds: {exc.code}")
    try:
        report.retention = enforce_retention(store)
    except StoreError as exc:
        report.errors.append(f"retention: {exc.code}")
    url = archive_url or settings.archive_url
    if url and report.retention is not None:
        try:
            location = location_from_settings(url, settings)
            report.archive = archive(store, keys, location,
                                     before=default_cutoff(now, settings.archive_hot_days),
                                     settle_seconds=settle_seconds)
            # Verify the whole archive every run that has one, not only after new objects:
            # an archive tampered with between runs must fail the run that finds nothing new
            # to write. "Has one" is the store's record of objects written there, so deleting
            # the manifest does not make the check go away.
            if verify and (report.archive.written or has_archived(store, location.url)):
                public = keys.signing_key().public_key()
                report.verification = verify_archive(store, location, public)
        except (StoreError, KeyStoreError, ValueError) as exc:
            code = exc.code if isinstance(exc, StoreError) else type(exc).__name__
            report.errors.append(f"archive: {code}: {str(exc).splitlines()[0][:200]}")
    return report


def has_archived(store: Store, url: str) -> bool:
    """Did an archive run ever write objects to ``url`` (the store's own record)?"""
    return bool(store.scalar(
        f"SELECT count() FROM {RUNS} WHERE kind = 'archive' AND destination = {{url:String}} "  # noqa: S608
        "AND objects_written > 0", {"url": url}))


class MaintenanceScheduler:
    """Runs ``job`` every ``interval_s`` seconds of ``clock`` on a daemon thread until ``stop``.

    The first pass runs one interval after ``start`` (``run_now`` runs one at once). Each pass
    is logged, counted in ``stats``, and, with ``events``, recorded in ``control_events``. The
    thread looks at the clock every ``poll_s`` real seconds; ``run_due`` is the same check, for
    a test that moves a ``ManualClock``.
    """

    def __init__(self, job: Callable[[], MaintenanceReport], interval_s: float, *,
                 clock: Clock = SYSTEM_CLOCK, events: ControlEvents | None = None,
                 poll_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError("maintenance interval must be > 0 seconds")
        self.job = job
        self.interval_s = interval_s
        self.clock = clock
        self.events = events
        self.poll_s = min(poll_s, interval_s)
        self.last: MaintenanceReport | None = None
        self.stats = {"maintenance_runs": 0, "maintenance_failures": 0}
        self._next = clock.monotonic() + interval_s
        self._run_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genai-audit-maintain",
                                        daemon=True)

    def start(self) -> MaintenanceScheduler:
        """Start the thread (once; a second call, or one after ``stop``, does nothing)."""
        if not self._thread.is_alive() and not self._stop.is_set() and \
                self._thread.ident is None:
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_due(self) -> MaintenanceReport | None:
        """Run a pass if the interval has passed on the clock; the pass's report, or None."""
        if self.clock.monotonic() < self._next:
            return None
        return self.run_now()

    def run_now(self) -> MaintenanceReport | None:
        """Run one pass now (never raises); its report, or None when the job itself failed."""
        with self._run_lock:
            self._next = self.clock.monotonic() + self.interval_s
            self.stats["maintenance_runs"] += 1
            try:
                report = self.job()
            except Exception as exc:  # keep the schedule alive; never log exception text
                self.stats["maintenance_failures"] += 1
                _log.error("maintenance pass failed: %s", type(exc).__name__)
                self._record(False, f"pass failed: {type(exc).__name__}")
                return None
            self.last = report
            if report.ok:
                _log.info("maintenance pass: %s", report.summary())
            else:
                self.stats["maintenance_failures"] += 1
                _log.warning("maintenance pass found problems: %s", report.summary())
            self._record(report.ok, report.summary())
            return report

    def _record(self, ok: bool, detail: str) -> None:
        if self.events is not None:
            try:
                self.events.record(MAINTENANCE, ok, detail)
            except Exception as exc:
                _log.warning("maintenance event not recorded: %s", type(exc).__name__)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.run_due()
