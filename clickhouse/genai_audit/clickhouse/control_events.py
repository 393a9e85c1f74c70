"""Control events: background work of the store's owner and its failures, in the store.

A maintenance pass or a ledger checkpoint runs off the request path, so its failure used to
be a log line nobody reads. ``ControlEvents`` appends one row per event to ``control_events``
(migration 012): each maintenance pass (ok or not) and each checkpoint the ledger could not
store. The report's control-failures section counts the failed ones for its period.

An event that cannot be written (the store is what failed) is kept in memory, bounded, and
written with the next one, so an outage shows up once the store is back.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.store import Store
from genai_audit.clock import SYSTEM_CLOCK, Clock

_log = logging.getLogger(__name__)

TABLE = "control_events"
COLUMNS = ("at", "kind", "ok", "detail", "writer_id")
MAINTENANCE = "maintenance"
CHECKPOINT = "ledger_checkpoint"
UNJOINED_EVENTS = "unjoined_events"
KINDS: dict[str, str] = {
    UNJOINED_EVENTS: "GenAI log events dropped unjoined: their span did not arrive within "
                     "the bound (their content was not stored)",
    MAINTENANCE: "a background maintenance step (holds, retention, archive) failed",
    CHECKPOINT: "a ledger checkpoint could not be stored (signed later, when the store took it)",
}
_PENDING_MAX = 1000


@dataclass(frozen=True)
class ControlEvent:
    at: datetime
    kind: str
    ok: bool
    detail: str  # step names, error codes and counts: never record content
    writer_id: str = ""


class ControlEvents:
    """Appends events to ``control_events``; keeps the unwritten ones for the next write."""

    def __init__(self, store: Store, *, clock: Clock = SYSTEM_CLOCK, writer_id: str = "") -> None:
        self.store = store
        self.clock = clock
        self.writer_id = writer_id
        self._pending: deque[ControlEvent] = deque(maxlen=_PENDING_MAX)
        self._lock = threading.Lock()

    def record(self, kind: str, ok: bool, detail: str) -> bool:
        """Append one event (and any kept from an outage). True when it reached the store."""
        if kind not in KINDS:
            raise ValueError(f"unknown control event kind {kind!r}")
        with self._lock:
            self._pending.append(ControlEvent(self.clock.now(), kind, ok, detail,
                                              self.writer_id))
            rows = [[e.at, e.kind, e.ok, e.detail, e.writer_id] for e in self._pending]
            try:
                self.store.insert(TABLE, rows, COLUMNS)
            except StoreError as exc:
                _log.warning("control event %s not stored yet (%s); kept for the next write",
                             kind, exc.code)
                return False
            self._pending.clear()
            return True

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


def failures(store: Store, since: datetime | None = None, until: datetime | None = None
             ) -> list[tuple[str, int, datetime, datetime, str]]:
    """``(kind, count, first, last, last detail)`` of failed events in the period."""
    rows = store.rows(
        "SELECT kind, count(), min(at), max(at), argMax(detail, at) FROM control_events "
        "WHERE NOT ok AND ({open_from:Bool} OR at >= {since:DateTime64(6, 'UTC')}) "
        "AND ({open_to:Bool} OR at < {until:DateTime64(6, 'UTC')}) "
        "GROUP BY kind ORDER BY kind",
        {"open_from": since is None, "open_to": until is None,
         "since": since or datetime(1970, 1, 1), "until": until or datetime(1970, 1, 1)})
    return [(str(k), int(n), first, last, str(d)) for k, n, first, last, d in rows]
