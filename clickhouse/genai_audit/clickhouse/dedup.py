"""Which records of a batch are already stored: exactly-once across re-batched replays.

The insert deduplication token drops a batch replayed *as is*. A sender that re-batches
(a collector's queue after a gateway restart, a spool drained after new traffic) can send
the same span inside a different batch, with a different token; this check catches that.
Record ids derive from trace and span ids, which the sender chooses: two tenants can send
the same ids, so a record's identity here is (tenant, id), never the id alone (a span
reusing another tenant's ids is stored, not dropped as a replay). "Already stored" is a
lookup by (tenant, id), bounded by the batch's time range so the primary key (tenant_id,
event_timestamp, id) prunes the scan. Only correct with one writer per store at a time
(the gateway's store owner), which is how the gateway writes; see docs/deploy.md for
server replicas. ``RecentIds`` keeps the lookup off the common path. """

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from genai_audit.clickhouse.store import Store
from genai_audit.processor.record import AuditRecord

_SQL = (
    "SELECT DISTINCT tenant_id, toString(id) FROM interactions "
    "WHERE tenant_id IN {tenants:Array(String)} "
    "AND event_timestamp BETWEEN {lo:DateTime64(6, 'UTC')} AND {hi:DateTime64(6, 'UTC')} "
    "AND id IN {ids:Array(UUID)}"
)

Key = tuple[str, str]  # (tenant_id, record id): what makes a record the same record


def key(record: AuditRecord) -> Key:
    return record.tenant_id, record.id


def already_stored(store: Store, records: Sequence[AuditRecord]) -> set[Key]:
    """The (tenant, id) keys among ``records`` that ``interactions`` already holds."""
    if not records:
        return set()
    stamps = [r.event_timestamp for r in records]
    rows = store.rows(_SQL, {
        "tenants": sorted({r.tenant_id for r in records}),
        "lo": min(stamps), "hi": max(stamps),
        "ids": sorted({r.id for r in records}),
    })
    return {(str(row[0]), str(row[1])) for row in rows}


class RecentIds:
    """Exactly-once for one writer, asking the store only when memory cannot answer.

    A record is new if this process has not written it (bounded memory of recent ids) and
    the store does not hold it. The store is asked only for records that a *previous* run
    could have written: those whose span started before this process started (plus a margin
    for sender clock skew), or not after the newest record evicted from memory. In steady
    state fresh traffic costs no lookup; after a restart, and for old spans (a collector
    queue emptying after an outage), every record is checked.
    """

    def __init__(self, capacity: int = 200_000, skew: timedelta = timedelta(minutes=15),
                 now: datetime | None = None) -> None:
        self.capacity = capacity
        self._trust_after = (now or datetime.now(UTC)) + skew
        self._ids: OrderedDict[Key, datetime] = OrderedDict()
        self._evicted_max: datetime | None = None

    def fresh(self, store: Store, records: Sequence[AuditRecord], *, replay: bool = False
              ) -> list[AuditRecord]:
        """The records to write: each (tenant, id) once, none this process or the store
        already has."""
        unique = {key(r): r for r in records if key(r) not in self._ids}
        check = [r for r in unique.values() if replay or not self._provably_new(r)]
        seen = already_stored(store, check) if check else set()
        return [r for k, r in unique.items() if k not in seen]

    def remember(self, records: Sequence[AuditRecord]) -> None:
        """Call after ``records`` were written."""
        for record in records:
            self._ids[key(record)] = record.event_timestamp
        while len(self._ids) > self.capacity:
            _, stamp = self._ids.popitem(last=False)
            if self._evicted_max is None or stamp > self._evicted_max:
                self._evicted_max = stamp

    def _provably_new(self, record: AuditRecord) -> bool:
        stamp = record.event_timestamp
        return stamp > self._trust_after and (self._evicted_max is None
                                              or stamp > self._evicted_max)
