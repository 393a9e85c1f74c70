"""The write side of the ledger: positions, leaf hashes and signed checkpoints.

Logs. Every row joins one append-only Merkle log: one per (table, tenant, writer session).
A writer session is one ``Ledger`` object (one exporter or gateway process); its id is
random, so writer processes never share a log and never coordinate. Within a process a
short lock reserves a range of positions per batch; hashing, inserting and signing run
outside it.

Positions. ``prepare`` assigns positions and leaf hashes once, before the first insert
attempt; the caller retries (or spools and replays) that same ``PreparedBatch``, whose
deduplication token is the hash of its leaves, so a retry is byte-identical and ClickHouse
drops it if the first attempt had landed. ``committed`` records a batch that landed;
``failed`` one that was given up: its positions stay reserved (a spool may still replay
it), and the tenant's next batch opens a fresh log, so checkpoints never wait on a hole. A
record this session already committed (same tenant and id: the same span exported again;
another tenant may send the same ids) is left out of later batches, so an in-process
replay adds nothing; a replay through another writer process lands as a second copy in
that writer's log (verify stays clean; the duplicate id is visible to any query).

Checkpoints. After ``checkpoint_records`` committed records or ``checkpoint_seconds``
(at the next commit, on the timer, and on ``flush``/``close``), each log's contiguous
committed prefix is signed: the new root is computed from the previous checkpoint's
compact range plus the new leaves, a consistency proof from the previous checkpoint is
built and checked, and the signed note goes into ``ledger_checkpoints`` with the leaves
it added (so ``verify`` can name a changed record, not just a changed range). The note also
signs, in one extension line, the previous size and a hash of what it lists per added leaf
(record id, expiry, event time), so the ids verify prints and the expiry it relies on are
signed data, not columns anyone can edit.

The log of logs. Every round of checkpoints is also appended to the session's own log,
``ledger/<table>/<writer id>``, one leaf per checkpoint (log id, size, root), signed the
same way in the same insert: removing the checkpoints of one log leaves the session's log of
logs naming what was signed for it (``verify`` fails on the difference).
"""

from __future__ import annotations

import base64
import logging
import operator
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any, NamedTuple
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger import merkle
from genai_audit.clickhouse.ledger.leaf import (
    INTERACTIONS,
    Kind,
    LeafSchema,
    content_digest,
    encoder,
    ns,
    quantize_decimal,
)
from genai_audit.clickhouse.store import Store

_log = logging.getLogger(__name__)

CHECKPOINTS_TABLE = "ledger_checkpoints"
SEEN_IDS = 200_000  # committed record ids remembered to keep in-process replays idempotent
CHECKPOINT_COLUMNS = ("log_id", "origin", "source_table", "tenant_id", "tree_size", "root_hash",
                      "prev_size", "consistency_proof", "leaf_hashes", "record_ids",
                      "record_expires", "record_events", "note")
LOG_OF_LOGS = "ledger"  # the source_table (and log id prefix) of each session's log of logs
META_PREFIX = "genai-audit/meta/v1"  # the extension line: prev size, hash of the leaf metadata


# Set when the interpreter starts to exit (threading's hook, before atexit's, so before the
# store client closes): a timer that wakes after that leaves the store alone.
_EXITING = threading.Event()
threading._register_atexit(_EXITING.set)  # type: ignore[attr-defined]


class LedgerError(RuntimeError):
    """The ledger's own invariant broke (never expected; the write is refused)."""


def new_writer_id() -> str:
    """Sortable and unique: ``20260101T120000Z-1a2b3c4d``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


def make_log_id(table: str, tenant_id: str, writer_id: str) -> str:
    return f"{table}/{quote(tenant_id, safe='')}/{writer_id}"


def origin_for(database: str, log_id: str) -> str:
    """The checkpoint origin line: unique per store database and log, no spaces or '+'."""
    return f"genai-audit/{database}/{log_id}".replace("+", "%2B")


class Entry(NamedTuple):  # a NamedTuple: cheap to make, one per record
    log_id: str
    position: int
    leaf: bytes
    record_id: uuid.UUID
    expires: int  # unix seconds when retention may drop the row (0: never)
    event: int  # the row's time column (event time), microseconds since the epoch


@dataclass(frozen=True)
class PreparedBatch:
    """Rows with their ledger columns, ready to insert (and to retry or spool as they are)."""

    table: str
    columns: tuple[str, ...]
    rows: list[list[Any]]
    token: str
    entries: tuple[Entry, ...]

    def insert_into(self, store: Store) -> None:
        """Insert the rows as prepared. Safe to repeat: the batch's deduplication token makes
        ClickHouse drop a retried or replayed insert instead of duplicating it."""
        store.insert(self.table, self.rows, self.columns,
                     settings={"insert_deduplication_token": self.token})


@dataclass
class _Log:
    log_id: str
    tenant_id: str
    next_index: int = 0
    sealed: bool = False
    size: int = 0  # the last checkpoint's tree size
    compact: list[bytes] = field(default_factory=list)  # its compact range
    root: bytes = merkle.EMPTY_ROOT
    done: dict[int, tuple[bytes, uuid.UUID, int, int]] = field(default_factory=dict)
    last_checkpoint: float = 0.0


class Ledger:
    """Assigns positions and signs checkpoints for one writer session over one table."""

    def __init__(self, store: Store, signing_key: Ed25519PrivateKey, *,
                 schema: LeafSchema = INTERACTIONS, row_columns: Sequence[str],
                 checkpoint_records: int = 4096, checkpoint_seconds: float = 30.0,
                 writer_id: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_checkpoint_failure: Callable[[int, str], None] | None = None) -> None:
        """``clock``: monotonic seconds for the checkpoint timer (the composition root passes
        its ``Clock.monotonic``). ``on_checkpoint_failure(logs, error code)``: told of each
        checkpoint that could not be stored (the owner records it as a control failure)."""
        self.store = store
        self.schema = schema
        self.writer_id = writer_id or new_writer_id()
        self.checkpoint_records = checkpoint_records
        self.checkpoint_seconds = checkpoint_seconds
        self._key = signing_key
        self._clock = clock
        self._on_failure = on_checkpoint_failure
        self._columns = tuple(row_columns)
        self._value_idx, self._decimal_idx = self._layout(schema, self._columns)
        self._id_idx = self._columns.index(schema.id_column)
        self._expiry_idx = ((self._columns.index("event_timestamp"),
                             self._columns.index("retention_days"))
                            if {"event_timestamp", "retention_days"} <= set(self._columns)
                            else None)
        self._tenant_idx = self._columns.index("tenant_id")
        self._time_idx = self._columns.index(schema.time_column)
        self._log_of_logs = _Log(make_log_id(LOG_OF_LOGS, schema.table, self.writer_id), "")
        self._logs: dict[str, _Log] = {}  # by log id
        self._open: dict[str, _Log] = {}  # by tenant: the log new rows go to
        self._assign_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, uuid.UUID], None] = OrderedDict()  # (tenant, id)
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.stats = {"checkpoints": 0, "checkpoint_failures": 0}

    @staticmethod
    def _layout(schema: LeafSchema, columns: tuple[str, ...]) -> tuple[list[int], list[int]]:
        """Where each covered value sits in a written row: the digest's content columns
        first (when the schema has one), then the leaf's fields in order."""
        written = schema.written_columns()
        missing = [c for c in written if c not in columns]
        uncovered = [c for c in columns if c not in written and c not in schema.not_covered]
        if missing or uncovered:
            raise LedgerError(f"{schema.table}: written columns and leaf schema disagree "
                              f"(not written: {missing}; not covered: {uncovered}); "
                              "add the column to the leaf schema in ledger/leaf.py")
        return ([columns.index(c) for c in written],
                [columns.index(f.column) for f in schema.fields() if f.kind is Kind.DECIMAL])

    # -- hot path -------------------------------------------------------------------
    def prepare(self, rows: Sequence[Sequence[Any]]) -> PreparedBatch:
        """Give every row its log, position and leaf hash (once: retry the returned batch).
        Rows whose record this session already committed are left out."""
        placed: list[tuple[str, int]] = []
        with self._assign_lock:
            if self._seen:
                rows = [r for r in rows if (str(r[self._tenant_idx]), _as_uuid(r[self._id_idx]))
                        not in self._seen]
            for row in rows:
                log = self._log_for(str(row[self._tenant_idx]))
                placed.append((log.log_id, log.next_index))
                log.next_index += 1
        version, schema = self.schema.current, self.schema
        encode = encoder(schema, version)
        digest = schema.digests.get(version)
        n_direct = len(schema.fields(version)) - (1 if digest else 0)
        digest_at = schema.columns(version).index(digest.column) if digest else 0
        direct_idx = self._value_idx[:n_direct]
        content_idx = self._value_idx[n_direct:]
        id_idx, decimal_idx, ts_idx = self._id_idx, self._decimal_idx, self._expiry_idx
        time_idx = self._time_idx
        direct = operator.itemgetter(*direct_idx)
        content = operator.itemgetter(*content_idx) if content_idx else None
        out, entries = [], []
        for row, (log_id, index) in zip(rows, placed, strict=True):
            values = list(row)
            for i in decimal_idx:
                values[i] = quantize_decimal(values[i])
            covered: list[Any] = list(direct(values))
            extra: tuple[Any, ...] = ()
            if content is not None:
                extra = (content_digest(content(values)),)
                covered.insert(digest_at, extra[0])
            leaf = sha256(b"\x00" + encode(log_id, index, covered)).digest()
            values += (*extra, log_id, index, version, leaf)
            out.append(values)
            record_id = values[id_idx]
            event = (values[time_idx] - _EPOCH) // _MICRO
            expires = 0 if ts_idx is None else (
                (event if ts_idx[0] == time_idx else
                 (values[ts_idx[0]] - _EPOCH) // _MICRO) // 1_000_000
                + int(values[ts_idx[1]]) * 86_400)
            entries.append(Entry(log_id, index, leaf, _as_uuid(record_id), expires, event))
        token = sha256(b"".join(e.leaf for e in entries)).hexdigest()
        return PreparedBatch(self.schema.table, (*self._columns, *schema.ledger_columns), out,
                             token, tuple(entries))

    def _log_for(self, tenant_id: str) -> _Log:
        log = self._open.get(tenant_id)
        if log is None or log.sealed:
            log_id = make_log_id(self.schema.table, tenant_id, self.writer_id)
            if log is not None:  # a fresh log after a failed batch: same session, next id
                log_id += f".{sum(1 for x in self._logs.values() if x.tenant_id == tenant_id)}"
            log = _Log(log_id, tenant_id, last_checkpoint=self._clock())
            self._logs[log_id] = log
            self._open[tenant_id] = log
        return log

    def committed(self, batch: PreparedBatch) -> None:
        """The batch landed: its leaves may now be covered by a checkpoint."""
        with self._assign_lock:
            for e in batch.entries:
                self._seen[(self._logs[e.log_id].tenant_id, e.record_id)] = None
            while len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
        with self._commit_lock:
            for e in batch.entries:
                self._logs[e.log_id].done[e.position] = (e.leaf, e.record_id, e.expires,
                                                         e.event)
            now = self._clock()
            touched = {self._logs[e.log_id].log_id: self._logs[e.log_id]
                       for e in batch.entries}.values()
            self._checkpoint([log for log in touched
                              if len(log.done) >= self.checkpoint_records
                              or now - log.last_checkpoint >= self.checkpoint_seconds])
        self._ensure_timer()

    def failed(self, batch: PreparedBatch) -> None:
        """The batch was given up (or spooled): its logs take no more rows."""
        with self._assign_lock:
            for e in batch.entries:
                self._logs[e.log_id].sealed = True

    # -- checkpoints ----------------------------------------------------------------
    def flush(self) -> int:
        """Checkpoint every log with committed, unsigned records. Returns how many signed."""
        with self._commit_lock:
            return self._checkpoint([log for log in self._logs.values() if log.done])

    def close(self) -> None:
        self._stop.set()
        self.flush()

    def unsigned(self) -> int:
        """Committed records no checkpoint covers yet (0 after a successful ``flush``)."""
        with self._commit_lock:
            return sum(len(log.done) for log in self._logs.values())

    def _ensure_timer(self) -> None:
        if self._timer is None and self.checkpoint_seconds > 0:
            self._timer = threading.Thread(target=self._tick, name="genai-audit-ledger",
                                           daemon=True)
            self._timer.start()

    def _tick(self) -> None:
        while not self._stop.wait(min(self.checkpoint_seconds, 1.0)):
            if _EXITING.is_set():  # owners sign their final checkpoints in close()
                return
            try:
                self.tick()
            except Exception as exc:  # the timer must survive a bad moment
                _log.warning("ledger checkpoint timer: %s", type(exc).__name__)

    def tick(self) -> int:
        """Checkpoint the logs whose ``checkpoint_seconds`` passed on the clock (the timer
        thread calls this; a test driving a ``ManualClock`` may too)."""
        with self._commit_lock:
            now = self._clock()
            return self._checkpoint([log for log in self._logs.values() if log.done and
                                     now - log.last_checkpoint >= self.checkpoint_seconds])

    def _checkpoint(self, logs: Sequence[_Log]) -> int:
        """Sign the contiguous committed prefix of each log and store the checkpoints in one
        insert (commit lock held). Returns how many were signed and stored."""
        signed: list[tuple[_Log, SignedCheckpoint]] = []
        for log in logs:
            new: list[tuple[bytes, bytes, int, int]] = []
            while log.size + len(new) in log.done:
                leaf, rid, expires, event = log.done[log.size + len(new)]
                new.append((leaf, rid.bytes, expires, event))
            if new:
                signed.append((log, sign_extension(
                    self.store.database, self.schema.table, log.log_id, log.tenant_id,
                    log.size, log.compact, log.root, new, self._key)))
        if not signed:
            return 0
        heads = self._log_of_logs
        signed.append((heads, sign_extension(
            self.store.database, LOG_OF_LOGS, heads.log_id, "", heads.size, heads.compact,
            heads.root, [log_entry(log.log_id, cp.size, cp.root) for log, cp in signed],
            self._key)))
        try:
            self.store.insert(CHECKPOINTS_TABLE, [cp.row for _, cp in signed],
                              CHECKPOINT_COLUMNS)
        except StoreError as exc:
            self.stats["checkpoint_failures"] += 1
            data_logs = len(signed) - 1  # the writer's log of logs is not one of them
            _log.warning("ledger checkpoint of %d log(s) failed (%s); retried later",
                         data_logs, exc.code)
            now = self._clock()
            for log, _ in signed:  # the timer tries again one interval later, not at once
                log.last_checkpoint = now
            if self._on_failure is not None:
                try:
                    self._on_failure(data_logs, exc.code)
                except Exception as report_exc:  # reporting must not break the ledger
                    _log.warning("ledger checkpoint failure not recorded: %s",
                                 type(report_exc).__name__)
            return 0
        now = self._clock()
        for log, cp in signed:
            for i in range(log.size, cp.size):
                log.done.pop(i, None)
            log.size, log.compact, log.root = cp.size, cp.compact, cp.root
            log.last_checkpoint = now
        self.stats["checkpoints"] += len(signed) - 1  # not counting the log of logs
        return len(signed) - 1


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _as_uuid(value: Any) -> uuid.UUID:
    return value if value.__class__ is uuid.UUID else uuid.UUID(str(value))


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    compact: list[bytes]
    row: list[Any]  # in CHECKPOINT_COLUMNS order


def log_entry(log_id: str, size: int, root: bytes) -> tuple[bytes, bytes, int, int]:
    """One leaf of a log of logs: a checkpoint (log id, size, root) the session signed.
    Its "record id" is the entry itself (netstring-framed), so verify can read it back."""
    entry = ns(log_id.encode()) + ns(b"%d" % size) + ns(root)
    return sha256(b"\x00" + ns(b"ledger/v1") + entry).digest(), ns(entry), 0, 0


def meta_digest(record_ids: bytes, expires: bytes, events: bytes) -> bytes:
    """What a checkpoint signs about the leaves it adds besides their hashes: SHA-256 of
    the record ids, then SHA-256 of the expiry and event times (64 bytes: verify can trust
    the ids when only the times were altered, and the other way round)."""
    return sha256(ns(record_ids)).digest() + sha256(ns(expires) + ns(events)).digest()


def meta_line(prev_size: int, digest: bytes) -> str:
    return f"{META_PREFIX} {prev_size} {base64.b64encode(digest).decode()}"


def sign_extension(database: str, table: str, log_id: str, tenant_id: str, old_size: int,
                   old_compact: Sequence[bytes], old_root: bytes,
                   new: Sequence[tuple[bytes, bytes, int, int]],
                   key: Ed25519PrivateKey) -> SignedCheckpoint:
    """The next checkpoint of a log: its root from the previous compact range and the new
    leaves (each ``(leaf hash, record id bytes, expiry, event time)``), a consistency proof
    from the previous checkpoint (checked here, before signing), the signed note (with the
    metadata line), and the ``ledger_checkpoints`` row."""
    size = old_size + len(new)
    ext = merkle.Extension(old_size, old_compact, [leaf for leaf, _, _, _ in new])
    root = ext.mth(0, size)
    proof = merkle.consistency_proof(ext.mth, old_size, size)
    if not merkle.verify_consistency(old_size, size, old_root, root, proof):
        raise LedgerError(f"log {log_id}: checkpoint {size} is not consistent with "
                          f"checkpoint {old_size}")
    origin = origin_for(database, log_id)
    ids = b"".join(rid for _, rid, _, _ in new)
    expires = b"".join(exp.to_bytes(8, "big") for _, _, exp, _ in new)
    events = b"".join(ev.to_bytes(8, "big", signed=True) for _, _, _, ev in new)
    line = meta_line(old_size, meta_digest(ids, expires, events))
    note = notes.sign(notes.Checkpoint(origin, size, root, (line,)), key)
    row = [log_id, origin, table, tenant_id, size, root, old_size, proof,
           b"".join(leaf for leaf, _, _, _ in new), ids, expires, events, note]
    return SignedCheckpoint(size, root, ext.compact_range(), row)
