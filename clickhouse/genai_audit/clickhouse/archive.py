"""``archive``: records older than the hot window -> Parquet, one object per tenant and month.

ClickHouse writes each object itself (``INSERT INTO FUNCTION s3(...)/file(...)``), then reads
it back to check it: SHA-256 of its bytes, its row count and an order-independent digest of
its rows (``rows_sha256``) must match what the store holds. Only then is the object entered
in the signed manifest (saved every few seconds and when the run ends). So a run is

* idempotent: a (tenant, month) whose records are all in the manifest is skipped;
* resumable: an interrupted run leaves a valid manifest of what is done (saved every few
  seconds and on the way out); an object that never made it into the manifest is
  overwritten by the next run.

Months are archived whole: ``before`` is rounded down to the first day of its month. Records
that arrive late for an archived month (ingested after the month's object) go into the next
``part-NNNNN`` object of that month. Content columns are archived as stored (ciphertext).

SQL text here is assembled only from module constants, column names read from the
server's catalogue (quoted) and table-function calls whose arguments are bound parameters;
every value is a bound parameter (hence the ``noqa: S608`` markers).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.binding import quote_identifier

from genai_audit.clickhouse.archive_location import ArchiveLocation
from genai_audit.clickhouse.archive_manifest import (
    MANIFEST_KEY,
    ArchivedObject,
    Manifest,
    open_signed,
    sign,
)
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import KeyStore

SOURCE = "interactions"
RUNS = "archive_runs"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Objects are hashed by reading them back whole: keep them to a few hundred MB.
MAX_ROWS_PER_OBJECT = 1_000_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Records past their retention are never archived, even if the TTL has not dropped them yet.
_NOT_EXPIRED = ("toDateTime(event_timestamp) + toIntervalDay(retention_days) "
                "> {through:DateTime64(6, 'UTC')}")


# The ledger's hook (issue 4): (store, archived objects) -> its signed checkpoint, as JSON.
LedgerCheckpoint = Callable[[Store, list[ArchivedObject]], dict[str, Any] | None]


class ArchiveError(StoreError):
    """An archive run could not complete (what was done stays recorded in the manifest)."""

    code = "archive_error"


@dataclass
class ArchiveRun:
    run_id: str
    cutoff: datetime
    written: list[ArchivedObject] = field(default_factory=list)
    skipped: int = 0
    manifest_sha256: str = ""

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.written)

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.written)


def month_start(moment: datetime) -> datetime:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def default_cutoff(now: datetime, hot_days: int) -> datetime:
    return now - timedelta(days=hot_days)


def object_key(tenant_id: str, month: str, seq: int, bucket: tuple[int, int] | None = None
               ) -> str:
    """``tenant=T/month=YYYY-MM/part-NNNNN[-bBBBofKKK].parquet``."""
    safe = _SAFE.sub("_", tenant_id) or "_"
    if safe != tenant_id:  # keep distinct tenants distinct after sanitizing
        safe += "-" + hashlib.sha256(tenant_id.encode()).hexdigest()[:8]
    split = f"-b{bucket[0] + 1:03d}of{bucket[1]:03d}" if bucket else ""
    return f"tenant={safe}/month={month}/part-{seq:05d}{split}.parquet"


def table_columns(store: Store) -> list[list[str]]:
    return [[str(n), str(t)] for n, t in store.rows(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {t:String} ORDER BY position", {"t": SOURCE})]


def rows_digest_sql(columns: list[list[str]]) -> str:
    """Order-independent SHA-256 over the rows' canonical TSV (same on store and Parquet)."""
    cols = ", ".join(quote_identifier(name) for name, _ in columns)
    return ("lower(hex(SHA256(arrayStringConcat(arraySort(groupArray("
            f"SHA256(formatRowNoNewline('TSV', {cols}))))))))")


def structure(columns: list[list[str]]) -> str:
    return ", ".join(f"{quote_identifier(n)} {t}" for n, t in columns)


def load_manifest(store: Store, location: ArchiveLocation, keys: KeyStore) -> Manifest | None:
    text = location.read_text(store, MANIFEST_KEY)
    if text is None:
        return None
    return open_signed(text, keys.signing_key().public_key())


def ledger_anchor(store: Store, objects: list[ArchivedObject]) -> dict[str, Any] | None:
    """The ledger's latest signed checkpoint of every log of the archived tenants: the
    manifest then names the signed tree heads its records are part of (check them with
    ``genai-audit verify`` and the public key). None when nothing is archived yet."""
    tenants = sorted({o.tenant_id for o in objects})
    if not tenants:
        return None
    rows = store.rows("SELECT log_id, max(tree_size), argMax(note, tree_size) "
                      "FROM ledger_checkpoints WHERE tenant_id IN {t:Array(String)} "
                      "GROUP BY log_id ORDER BY log_id", {"t": tenants})
    return {"logs": [{"log_id": str(log_id), "tree_size": int(size), "note": str(note)}
                     for log_id, size, note in rows]}


def archive(store: Store, keys: KeyStore, location: ArchiveLocation, *, before: datetime,
            settle_seconds: int = 60, checkpoint_seconds: float = 10.0,
            max_rows_per_object: int = MAX_ROWS_PER_OBJECT,
            ledger_checkpoint: LedgerCheckpoint | None = ledger_anchor,
            on_object: Callable[[ArchivedObject], None] | None = None,
            on_group: Callable[[int, int], None] | None = None) -> ArchiveRun:
    """Archive every whole month before ``before``. See the module docstring.

    The manifest is saved at most every ``checkpoint_seconds`` and when the run ends (also
    when it is interrupted); 0 saves it after every object. A month with more than
    ``max_rows_per_object`` new records is split into several objects (by record id hash).
    ``ledger_checkpoint`` (default ``ledger_anchor``) is asked at every save for the
    ledger's signed checkpoints covering the archived objects; its answer goes into the
    manifest's ``ledger_checkpoint``. None leaves that field empty."""
    if max_rows_per_object < 1:
        raise ValueError("max_rows_per_object must be >= 1")
    started = _utcnow()
    run = ArchiveRun(str(uuid.uuid4()), month_start(before))
    try:
        _run(store, keys, location, run, settle_seconds, checkpoint_seconds,
             max_rows_per_object, ledger_checkpoint, on_object, on_group)
    except Exception as exc:
        with contextlib.suppress(StoreError):  # never mask the real failure
            _record(store, run, location, started, ok=False, problems=[_describe(exc)])
        raise
    _record(store, run, location, started, ok=True, problems=[])
    return run


def _run(store: Store, keys: KeyStore, location: ArchiveLocation, run: ArchiveRun,
         settle_seconds: int, checkpoint_seconds: float, max_rows_per_object: int,
         ledger_checkpoint: LedgerCheckpoint | None,
         on_object: Callable[[ArchivedObject], None] | None,
         on_group: Callable[[int, int], None] | None) -> None:
    manifest = load_manifest(store, location, keys) or Manifest(database=store.database)
    if manifest.database != store.database:
        raise ArchiveError(f"{location.url} holds the archive of database "
                           f"{manifest.database!r}, not {store.database!r}: use another prefix")
    columns = table_columns(store)
    schema_id = manifest.add_schema(columns)
    server_now = store.scalar("SELECT now64(6)")
    through = _aware(server_now) - timedelta(seconds=settle_seconds)
    groups = store.rows(
        f"SELECT tenant_id, toStartOfMonth(event_timestamp) AS m, max(ingested_at) FROM {SOURCE} "  # noqa: S608
        "WHERE event_timestamp < {cutoff:DateTime64(6, 'UTC')} "
        "AND ingested_at <= {through:DateTime64(6, 'UTC')} "
        f"AND {_NOT_EXPIRED} GROUP BY tenant_id, m ORDER BY tenant_id, m",
        {"cutoff": run.cutoff, "through": through})
    saver = _ManifestSaver(store, location, keys, manifest, run, checkpoint_seconds,
                           ledger_checkpoint)
    try:
        for index, (tenant_id, month_day, newest) in enumerate(groups):
            if on_group:
                on_group(index, len(groups))
            month = _month_label(month_day)
            done = manifest.objects_for(str(tenant_id), month)
            after = max((_parse(o.ingested_through) for o in done), default=_EPOCH)
            if _aware(newest) <= after:
                run.skipped += 1
                continue
            seq = max((o.seq for o in done), default=0) + 1
            where, params = _selection(str(tenant_id), month_day, after, through, None)
            pending = int(store.scalar(f"SELECT count() FROM {SOURCE} WHERE {where}", params))  # noqa: S608
            count = max(1, -(-pending // max_rows_per_object))  # ceil
            objects = []
            for b in range(count):
                obj = _write_object(store, location, columns, schema_id, str(tenant_id),
                                    month_day, month, seq, after, through,
                                    (b, count) if count > 1 else None)
                if obj is not None:
                    objects.append(obj)
            # all parts of this (tenant, month, seq) are verified: record them together, so
            # a crash halfway through never marks the month as archived
            manifest.objects.extend(objects)
            run.written.extend(objects)
            saver.maybe_save()
            if on_object:
                for obj in objects:
                    on_object(obj)
    finally:  # also on an interruption: what is verified gets recorded
        saver.save()


class _ManifestSaver:
    """Writes the signed manifest at most every ``interval_s`` and at the end of a run.

    Objects written after the last save are not lost on a crash: the next run finds their
    (tenant, month) unrecorded and overwrites them under the same names."""

    def __init__(self, store: Store, location: ArchiveLocation, keys: KeyStore,
                 manifest: Manifest, run: ArchiveRun, interval_s: float,
                 ledger_checkpoint: LedgerCheckpoint | None) -> None:
        self.store, self.location, self.keys = store, location, keys
        self.manifest, self.run, self.interval_s = manifest, run, interval_s
        self.ledger_checkpoint = ledger_checkpoint
        self.saved_count = len(manifest.objects)
        self.saved_at = time.monotonic()

    def maybe_save(self) -> None:
        if time.monotonic() - self.saved_at >= self.interval_s:
            self.save()

    def save(self) -> None:
        if len(self.manifest.objects) == self.saved_count:
            if not self.run.manifest_sha256 and self.manifest.objects:
                document = sign(self.manifest, self.keys.signing_key())
                self.run.manifest_sha256 = hashlib.sha256(document.encode()).hexdigest()
            return
        self.manifest.updated_at = _iso(_utcnow())
        if self.ledger_checkpoint is not None:
            self.manifest.ledger_checkpoint = self.ledger_checkpoint(self.store,
                                                                     self.manifest.objects)
        document = sign(self.manifest, self.keys.signing_key())
        self.location.write_text(self.store, MANIFEST_KEY, document)
        self.run.manifest_sha256 = hashlib.sha256(document.encode()).hexdigest()
        self.saved_count = len(self.manifest.objects)
        self.saved_at = time.monotonic()


def _selection(tenant_id: str, month_day: date, after: datetime, through: datetime,
               bucket: tuple[int, int] | None) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (and its parameters) of one object's records."""
    where = ("tenant_id = {tenant:String} AND toStartOfMonth(event_timestamp) = {month:Date} "
             "AND ingested_at > {after:DateTime64(6, 'UTC')} "
             "AND ingested_at <= {through:DateTime64(6, 'UTC')} AND " + _NOT_EXPIRED)
    params: dict[str, Any] = {"tenant": tenant_id, "month": month_day, "after": after,
                              "through": through}
    if bucket is not None:  # a stable split of a large month: by a hash of the record id
        where += " AND cityHash64(id) % {buckets:UInt64} = {bucket:UInt64}"
        params.update(bucket=bucket[0], buckets=bucket[1])
    return where, params


def _write_object(store: Store, location: ArchiveLocation, columns: list[list[str]],
                  schema_id: str, tenant_id: str, month_day: date, month: str, seq: int,
                  after: datetime, through: datetime, bucket: tuple[int, int] | None
                  ) -> ArchivedObject | None:
    """Write, read back and check one object; None when its selection is empty."""
    key = object_key(tenant_id, month, seq, bucket)
    cols = ", ".join(quote_identifier(n) for n, _ in columns)
    where, params = _selection(tenant_id, month_day, after, through, bucket)
    expected = store.rows(
        f"SELECT count(), {rows_digest_sql(columns)}, min(event_timestamp), max(event_timestamp),"  # noqa: S608
        " max(toDateTime(event_timestamp) + toIntervalDay(retention_days)),"
        " max(toDateTime(event_timestamp) + toIntervalDay(content_retention_days)) "
        f"FROM {SOURCE} WHERE {where}", params)[0]
    if int(expected[0]) == 0:
        return None
    fn, fn_params = location.function(key, "Parquet")
    with location.guarded(f"cannot write {key}"):
        store.command(f"INSERT INTO FUNCTION {fn} SELECT {cols} FROM {SOURCE} WHERE {where} "  # noqa: S608
                      "ORDER BY event_timestamp, id", {**params, **fn_params},
                      settings=location.write_settings)
    sha, size = location.object_digest(store, key)
    rows, digest = read_back(store, location, key, columns)
    if (rows, digest) != (int(expected[0]), str(expected[1])):
        raise ArchiveError(f"{key}: read back {rows} rows / digest {digest[:12]}, expected "
                           f"{expected[0]} / {str(expected[1])[:12]} (records changed during "
                           "the run?); nothing recorded for it, run archive again")
    return ArchivedObject(
        key=key, tenant_id=tenant_id, month=month, seq=seq, rows=rows, bytes=size, sha256=sha,
        rows_sha256=digest, schema=schema_id, first_event=_iso(expected[2]),
        last_event=_iso(expected[3]), ingested_after=_iso(after), ingested_through=_iso(through),
        expires_at=_iso(expected[4]), content_expires_at=_iso(expected[5]),
        written_at=_iso(_utcnow()))


def read_back(store: Store, location: ArchiveLocation, key: str,
              columns: list[list[str]]) -> tuple[int, str]:
    """Row count and ``rows_sha256`` of an archived object, read through ClickHouse."""
    fn, params = location.function(key, "Parquet", structure(columns))
    with location.guarded(f"cannot read {key}"):
        count, digest = store.rows(f"SELECT count(), {rows_digest_sql(columns)} FROM {fn}",  # noqa: S608
                                   params)[0]
    return int(count), str(digest)


def _record(store: Store, run: ArchiveRun, location: ArchiveLocation, started: datetime, *,
            ok: bool, problems: list[str]) -> None:
    store.insert(RUNS, [[run.run_id, "archive", location.url, started, run.cutoff,
                         len(run.written), run.skipped, run.rows, run.bytes, ok, problems,
                         run.manifest_sha256]],
                 ["run_id", "kind", "destination", "started_at", "cutoff", "objects_written",
                  "objects_skipped", "rows", "bytes", "ok", "problems", "manifest_sha256"])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StoreError):
        return f"{exc.code}: {str(exc).splitlines()[0][:300]}"
    return type(exc).__name__


def _month_label(value: date | datetime) -> str:
    return f"{value.year:04d}-{value.month:02d}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return _aware(value).astimezone(UTC).isoformat()


def _parse(text: str) -> datetime:
    return _aware(datetime.fromisoformat(text))


def _utcnow() -> datetime:
    return datetime.now(UTC)
