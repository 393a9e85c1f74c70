"""Legal holds: held records survive their TTL until the hold is released.

A TTL cannot look at another table, so a hold does not try to stop the TTL of
``interactions``. Instead it *copies* the records it covers into ``held_interactions``, a
table without TTL, partitioned by hold:

* ``add_hold`` records the hold (``legal_holds``, append-only) and copies every record it
  covers at once, so a hold placed long after insert protects rows that are about to expire;
* at write time, the owner's writer (``ActiveHolds.protect``, built by the composition root)
  copies every new record that an active hold covers in the same step as its insert, so a
  record arriving after the hold is protected however soon its TTL falls, even one already
  past its retention on arrival (which the TTL drops at insert);
* ``sweep_holds`` (run by the owner's maintenance and ``genai-audit maintain``) copies records
  that arrived later and fall under an open hold, for holds the writer had not seen yet (one
  placed by another process within the writer's refresh interval); it is idempotent (rows
  already copied for that hold are skipped);
* ``release_hold`` records the release and drops that hold's partition: the copies disappear,
  and the originals, if still in ``interactions``, expire on their own schedule.

The write-time copy costs nothing while no hold is active (a cached list, refreshed every
few seconds on the injected clock). The user is named
by the same pseudonym as in the store (the keystore maps the user id to it); the plaintext
user id never reaches SQL.

SQL text here is assembled only from module constants, column names read from the
server's catalogue (quoted) and table-function calls whose arguments are bound parameters;
every value is a bound parameter (hence the ``noqa: S608`` markers).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.binding import format_str, quote_identifier

from genai_audit.clickhouse.dsn import validate_identifier
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.store import Store
from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.keystore import KeyStore
from genai_audit.processor.pseudonym import pseudonym_of

_log = logging.getLogger(__name__)

HOLDS = "legal_holds"
HELD = "held_interactions"
SOURCE = "interactions"
_MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2299, 12, 31, tzinfo=UTC)


class HoldError(ValueError):
    """A hold request that cannot be carried out (unknown hold, already released...)."""


@dataclass(frozen=True)
class Hold:
    hold_id: str
    tenant_id: str
    user_key: str  # pseudonym; '' = every user of the tenant
    from_ts: datetime | None  # inclusive; None = open
    to_ts: datetime | None  # exclusive; None = open (covers records still to come)
    reason: str
    placed_by: str
    placed_at: datetime
    released_at: datetime | None = None
    released_by: str = ""
    release_reason: str = ""
    rows_held: int = 0

    @property
    def active(self) -> bool:
        return self.released_at is None

    def covers(self, tenant_id: str, user_key: str, event_timestamp: datetime) -> bool:
        """Whether a record of this tenant, subject and time falls under the hold."""
        return (tenant_id == self.tenant_id
                and (not self.user_key or user_key == self.user_key)
                and (self.from_ts is None or event_timestamp >= self.from_ts)
                and (self.to_ts is None or event_timestamp < self.to_ts))


def add_hold(store: Store, keys: KeyStore, *, tenant_id: str, reason: str, actor: str,
             user_id: str | None = None, from_ts: datetime | None = None,
             to_ts: datetime | None = None) -> Hold:
    """Place a hold and copy the records it covers now. Returns the hold with its row count."""
    if not tenant_id.strip():
        raise HoldError("a hold needs a tenant")
    if not reason.strip() or not actor.strip():
        raise HoldError("a hold needs a reason and the name of who placed it")
    if from_ts is not None and to_ts is not None and from_ts >= to_ts:
        raise HoldError("--from must be before --to")
    user_key = ""
    if user_id is not None:
        if not user_id.strip():
            raise HoldError("--user must not be empty")
        found = pseudonym_of(keys, tenant_id, user_id)
        if found is None:
            raise HoldError(f"tenant {tenant_id} has no live data subject with this user id "
                            "(never seen, or erased)")
        user_key = found
    hold_id = str(uuid.uuid4())
    store.insert(HOLDS, [[hold_id, "placed", tenant_id, user_key, from_ts, to_ts, reason, actor]],
                 ["hold_id", "event", "tenant_id", "user_key", "from_ts", "to_ts", "reason",
                  "actor"])
    hold = get_hold(store, hold_id)
    _copy_covered(store, hold)
    return get_hold(store, hold_id)


def release_hold(store: Store, hold_id: str, *, actor: str, reason: str) -> Hold:
    """Release an active hold: its copies are dropped, the originals expire as usual."""
    hold = get_hold(store, hold_id)
    if not hold.active:
        raise HoldError(f"hold {hold_id} was already released at {hold.released_at:%Y-%m-%d %H:%M}")
    if not reason.strip() or not actor.strip():
        raise HoldError("a release needs a reason and the name of who released it")
    store.insert(HOLDS, [[hold.hold_id, "released", hold.tenant_id, hold.user_key, hold.from_ts,
                          hold.to_ts, reason, actor]],
                 ["hold_id", "event", "tenant_id", "user_key", "from_ts", "to_ts", "reason",
                  "actor"])
    # hold_id is a UUID we generated and just read back (checked in get_hold): safe literal.
    store.command(f"ALTER TABLE {HELD} DROP PARTITION {format_str(hold.hold_id)}")
    return get_hold(store, hold_id)


def list_holds(store: Store, tenant_id: str | None = None, *,
               include_released: bool = False) -> list[Hold]:
    rows = store.rows(
        "SELECT hold_id, any(tenant_id), any(user_key), any(from_ts), any(to_ts), "  # noqa: S608
        "argMinIf(reason, at, event = 'placed'), argMinIf(actor, at, event = 'placed'), "
        "minIf(at, event = 'placed'), countIf(event = 'released') > 0, "
        "maxIf(at, event = 'released'), argMaxIf(actor, at, event = 'released'), "
        "argMaxIf(reason, at, event = 'released') "
        f"FROM {HOLDS} WHERE {{all:Bool}} OR tenant_id = {{tenant:String}} "
        "GROUP BY hold_id ORDER BY 8, hold_id",
        {"all": tenant_id is None, "tenant": tenant_id or ""})
    counts = dict(store.rows(f"SELECT hold_id, uniqExact(id) FROM {HELD} GROUP BY hold_id"))  # noqa: S608
    holds = [Hold(str(h), str(t), str(u), _utc(f), _utc(to), str(why), str(by), placed,
                  placed_rel if released else None, str(rel_by) if released else "",
                  str(rel_why) if released else "", int(counts.get(h, 0)))
             for h, t, u, f, to, why, by, placed, released, placed_rel, rel_by, rel_why in rows]
    return [h for h in holds if include_released or h.active]


def get_hold(store: Store, hold_id: str) -> Hold:
    try:
        canonical = str(uuid.UUID(hold_id))
    except ValueError:
        raise HoldError(f"{hold_id!r} is not a hold id (a UUID, see `genai-audit hold list`)"
                        ) from None
    for hold in list_holds(store, include_released=True):
        if hold.hold_id == canonical:
            return hold
    raise HoldError(f"no hold {canonical}")


def sweep_holds(store: Store) -> int:
    """Copy records that fall under an active hold and are not copied yet. Returns the count."""
    return sum(_copy_covered(store, hold) for hold in list_holds(store))


def held_ids(store: Store, tenant_id: str | None = None) -> set[str]:
    """Ids of records currently held by at least one active hold."""
    rows = store.rows(f"SELECT DISTINCT toString(id) FROM {HELD} "  # noqa: S608
                      "WHERE {all:Bool} OR tenant_id = {tenant:String}",
                      {"all": tenant_id is None, "tenant": tenant_id or ""})
    return {str(r[0]) for r in rows}


def _copy_covered(store: Store, hold: Hold) -> int:
    columns = _sync_columns(store)
    column_list = ", ".join(quote_identifier(c) for c in columns)
    params = {"hold": hold.hold_id, "tenant": hold.tenant_id, "user_key": hold.user_key,
              "from": hold.from_ts or _MIN_TS, "to": hold.to_ts or _MAX_TS}
    where = ("tenant_id = {tenant:String} "  # noqa: S608
             "AND ({user_key:String} = '' OR gdpr_pseudonymized_user_key = {user_key:String}) "
             "AND event_timestamp >= {from:DateTime64(6, 'UTC')} "
             "AND event_timestamp < {to:DateTime64(6, 'UTC')} "
             f"AND id NOT IN (SELECT id FROM {HELD} WHERE hold_id = {{hold:String}})")
    missing = int(store.scalar(f"SELECT count() FROM {SOURCE} WHERE {where}", params) or 0)  # noqa: S608
    if missing:
        store.command(f"INSERT INTO {HELD} (hold_id, {column_list}) "  # noqa: S608
                      f"SELECT {{hold:String}}, {column_list} FROM {SOURCE} WHERE {where}", params)
    return missing


def _sync_columns(store: Store) -> list[str]:
    """The columns of ``interactions``, adding to ``held_interactions`` any it lacks."""
    source = store.rows("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                        "AND table = {t:String} ORDER BY position", {"t": SOURCE})
    held = {str(r[0]) for r in store.rows(
        "SELECT name FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String}", {"t": HELD})}
    for name, type_ in source:
        if name not in held:
            # name and type come from the server's own catalogue, not from user input
            store.command(f"ALTER TABLE {HELD} ADD COLUMN IF NOT EXISTS "
                          f"{quote_identifier(validate_identifier(str(name), 'column'))} {type_}")
    return [str(r[0]) for r in source]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ActiveHolds:
    """The write path's view of the active holds: copies each new record a hold covers.

    ``protect`` runs right after a batch's insert into ``interactions`` (the owner's
    ``InteractionWriter``), with the rows exactly as inserted, so the copy does not depend on
    the row surviving its TTL. The hold list is re-read every ``refresh_s`` seconds of the
    injected clock; a hold placed by another process in between is caught by the next sweep
    (see docs/retention.md for the bound). A failed copy raises ``StoreError``: the batch is
    retried (the copies are idempotent: ``held_interactions`` replaces by hold and id).
    """

    def __init__(self, store: Store, *, refresh_s: float = 5.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.clock = clock
        self._holds: list[Hold] = []
        self._loaded_at: float | None = None
        self._columns_synced = False
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Re-read the holds before the next write (after a hold was placed or released)."""
        with self._lock:
            self._loaded_at = None

    def active(self) -> list[Hold]:
        with self._lock:
            now = self.clock.monotonic()
            if self._loaded_at is None or now - self._loaded_at >= self.refresh_s:
                try:
                    self._holds = list_holds(self.store)
                except StoreError as exc:
                    _log.warning("legal holds unreadable (%s); keeping the last known ones",
                                 exc.code)
                self._loaded_at = now
            return self._holds

    def protect(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Copy the rows that an active hold covers into ``held_interactions``; the count."""
        holds = self.active()
        if not holds or not rows:
            return 0
        tenant_at = columns.index("tenant_id")
        user_at = columns.index("gdpr_pseudonymized_user_key")
        ts_at = columns.index("event_timestamp")
        copies = [[hold.hold_id, *row] for row in rows for hold in holds
                  if hold.covers(str(row[tenant_at]), str(row[user_at]), _utc_ts(row[ts_at]))]
        if copies:
            if not self._columns_synced:
                _sync_columns(self.store)
                self._columns_synced = True
            self.store.insert(HELD, copies, ["hold_id", *columns])
        return len(copies)


def _utc_ts(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
