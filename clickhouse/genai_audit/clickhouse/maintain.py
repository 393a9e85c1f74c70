"""One maintenance pass (``genai-audit maintain``), and a scheduler for long-running owners.

Order matters: holds are swept first (records that fall under a hold are copied before their
TTL can drop them), then retention is enforced (expired records never reach the archive),
then the archive runs and, when it wrote something, is verified.

``run_maintenance`` is for cron or a Kubernetes CronJob (through the CLI); the gateway, which
owns the store in its process, runs it on an interval with ``MaintenanceScheduler``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from genai_audit.clickhouse.archive import RUNS, ArchiveRun, archive, default_cutoff
from genai_audit.clickhouse.archive_location import location_from_settings
from genai_audit.clickhouse.archive_verify import VerifyResult, verify_archive
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.holds import sweep_holds
from genai_audit.clickhouse.retention import EnforcementResult, enforce_retention
from genai_audit.clickhouse.store import Store
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


def run_maintenance(store: Store, keys: KeyStore, settings: Settings, *,
                    archive_url: str | None = None, now: datetime | None = None,
                    verify: bool = True, settle_seconds: int = 60) -> MaintenanceReport:
    """Sweep holds, enforce retention, archive (if a URL is configured) and verify, once.

    A failing step is recorded in ``errors`` and the later steps still run, except that the
    archive is skipped when retention could not be enforced."""
    now = now or datetime.now(UTC)
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
    """Runs ``job`` every ``interval_s`` seconds on a daemon thread until ``stop``."""

    def __init__(self, job: Callable[[], MaintenanceReport], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("maintenance interval must be > 0 seconds")
        self.job = job
        self.interval_s = interval_s
        self.last: MaintenanceReport | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genai-audit-maintain",
                                        daemon=True)

    def start(self) -> MaintenanceScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = self.job()
                if not self.last.ok:
                    _log.warning("maintenance found problems: %s", "; ".join(self.last.errors)
                                 or "archive verification failed")
            except Exception as exc:  # keep the schedule alive; never log exception text
                _log.error("maintenance pass failed: %s", type(exc).__name__)
            self._stop.wait(self.interval_s)
