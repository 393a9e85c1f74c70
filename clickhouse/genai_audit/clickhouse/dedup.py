"""Which records of a batch are already stored: exactly-once across re-batched replays.

The insert deduplication token drops a batch replayed *as is*. A sender that re-batches
(a collector's queue after a gateway restart, a spool drained after new traffic) can send
the same span inside a different batch, with a different token; this check catches that.
Record ids derive from trace and span ids, so "already stored" is a lookup by id, bounded
by the batch's tenants and time range so the primary key (tenant_id, event_timestamp, id)
prunes the scan. Only correct with one writer per store at a time (the gateway's store
owner), which is how the gateway writes; see docs/deploy.md for server replicas.
"""

from __future__ import annotations

from collections.abc import Sequence

from genai_audit.clickhouse.store import Store
from genai_audit.processor.record import AuditRecord

_SQL = (
    "SELECT DISTINCT toString(id) FROM interactions "
    "WHERE tenant_id IN {tenants:Array(String)} "
    "AND event_timestamp BETWEEN {lo:DateTime64(6, 'UTC')} AND {hi:DateTime64(6, 'UTC')} "
    "AND id IN {ids:Array(UUID)}"
)


def already_stored(store: Store, records: Sequence[AuditRecord]) -> set[str]:
    """The ids among ``records`` that the ``interactions`` table already holds."""
    if not records:
        return set()
    stamps = [r.event_timestamp for r in records]
    rows = store.rows(_SQL, {
        "tenants": sorted({r.tenant_id for r in records}),
        "lo": min(stamps), "hi": max(stamps),
        "ids": [r.id for r in records],
    })
    return {str(row[0]) for row in rows}
