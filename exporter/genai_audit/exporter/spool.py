"""The write-ahead spool: finished audit records on local disk while the store is away.

Used by the in-process exporter and by the gateway alike, so a ClickHouse outage loses
nothing either of them acknowledged. One file per batch:

* ``append`` writes ``<seq>.tmp`` (looping over short writes), fsyncs it, renames it to
  ``<seq>.json`` and fsyncs the directory: a batch is either wholly in the spool or not at
  all, even after ``kill -9``. A write the disk refuses (``ENOSPC``, ``EIO``...) removes the
  temporary file and raises ``SpoolWriteFailed``, so the caller never acknowledges a cut
  batch;
* ``drain`` hands the oldest batches to a writer, deleting each file only after the writer
  returned; it *claims* a file by renaming it first, so several processes may share one
  spool directory (claims of dead processes are returned on open);
* the spool is bounded (bytes): ``append`` raises ``SpoolFull`` instead of growing, and the
  caller answers with a retryable status so the sender keeps the data. ``refused`` stays
  set after either refusal until a batch is appended or drained again (readiness reads it).

A replayed batch never duplicates rows: record ids derive from trace and span ids, and the
writer's deduplication token derives from the record ids. Files hold the record as the
writer stores it (no plaintext user id, no structured ``content``; ``user_id`` must be
None), with 0600 permissions in a 0700 directory.
"""

from __future__ import annotations

import base64
import errno
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from genai_audit.processor.record import NO_CONTENT, AuditRecord, ContentState, Flag

_log = logging.getLogger(__name__)

SPOOL_FORMAT = 1
# never written to disk (the last two: in-memory identity for the merge stage, done by then)
_NOT_SPOOLED = frozenset({"content", "extra", "user_id", "parent_span_id", "end_ns"})
_SUFFIX = ".json"
_CLAIM = ".claim-"
_RESCAN_S = 5.0


class SpoolFull(Exception):
    """The spool reached its size bound; the caller must answer with a retryable status."""


class SpoolWriteFailed(SpoolFull):
    """The disk refused a batch (no space, I/O error): nothing of it was kept."""


class SpoolCorrupt(Exception):
    """A spool file that cannot be read back (moved aside to ``quarantine/``)."""


@dataclass(frozen=True)
class SpoolStats:
    batches: int
    records: int
    bytes: int


class Spool:
    """A bounded, fsync'd, multi-process-safe directory of record batches."""

    def __init__(self, directory: str | Path, max_bytes: int, *,
                 write: Callable[[int, memoryview], int] = os.write) -> None:
        """``write``: the file-writing call (``os.write``); a seam for disk-full tests."""
        self.directory = Path(directory)
        self._write = write
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._cached: SpoolStats | None = None
        self._scanned_at = 0.0
        self.refused = False  # a batch was refused; cleared once one is appended or drains
        if self.directory.is_dir():  # created on the first append, not before
            self._release_dead_claims()

    # -- writing ------------------------------------------------------------------------
    def append(self, records: Sequence[AuditRecord]) -> None:
        """Durably add one batch. Raises ``SpoolFull`` when over the bound."""
        if not records:
            return
        body = json.dumps({"format": SPOOL_FORMAT, "count": len(records),
                           "records": [encode_record(r) for r in records]},
                          separators=(",", ":")).encode()
        with self._lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                self._refuse(exc)
            if self.stats().bytes + len(body) > self.max_bytes:
                self.refused = True
                raise SpoolFull(f"spool {self.directory} is full ({self.max_bytes} bytes)")
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):08d}"
            tmp, final = self.directory / (name + ".tmp"), self.directory / (name + _SUFFIX)
            try:
                self._write_file(tmp, body)
                os.replace(tmp, final)
                self._fsync_dir()
            except OSError as exc:  # not acknowledged: keep nothing of it
                tmp.unlink(missing_ok=True)
                final.unlink(missing_ok=True)
                self._refuse(exc)
            self.refused = False
            self._adjust(1, len(records), len(body))

    def _refuse(self, exc: OSError) -> NoReturn:
        self.refused = True
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        raise SpoolWriteFailed(f"spool {self.directory} cannot write a batch ({code})") from exc

    def _write_file(self, path: Path, body: bytes) -> None:
        """All of ``body`` into a new file, fsync'd: a short write is continued, never
        ignored; a write that makes no progress is an error."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(body)
            while view:
                written = self._write(fd, view)
                if written <= 0:
                    raise OSError(errno.ENOSPC, "no progress writing the spool file")
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        """Unclaimed batch files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*" + _SUFFIX))

    def stats(self) -> SpoolStats:
        """Batches, records and bytes spooled: counted as this process appends and drains,
        rescanned from disk every few seconds (other processes may share the directory)."""
        if self._cached is None or time.monotonic() - self._scanned_at > _RESCAN_S:
            self._cached, self._scanned_at = self._scan(), time.monotonic()
        return self._cached

    def _scan(self) -> SpoolStats:
        batches = records = size = 0
        if not self.directory.is_dir():
            return SpoolStats(0, 0, 0)
        for path in self.directory.iterdir():
            if path.is_file() and (path.suffix == _SUFFIX or _CLAIM in path.name):
                batches += 1
                size += path.stat().st_size
                records += _count_hint(path)
        return SpoolStats(batches, records, size)

    def _adjust(self, batches: int, records: int, size: int) -> None:
        if batches < 0:
            self.refused = False
        if self._cached is not None:
            c = self._cached
            self._cached = SpoolStats(max(0, c.batches + batches), max(0, c.records + records),
                                      max(0, c.bytes + size))

    def drain(self, write: Callable[[list[AuditRecord]], None],
              max_batches: int | None = None) -> int:
        """Write spooled batches oldest first; stop at the first failure (it propagates).

        Returns the number of records drained. A file leaves the spool only after
        ``write`` returned for it.
        """
        drained = 0
        for count, path in enumerate(self.pending()):
            if max_batches is not None and count >= max_batches:
                break
            claimed = path.with_name(path.name + _CLAIM + str(os.getpid()))
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another process claimed it
            try:
                records = self._read(claimed)
            except SpoolCorrupt:
                (self.directory / "quarantine").mkdir(exist_ok=True, mode=0o700)
                os.replace(claimed, self.directory / "quarantine" / path.name)
                self._cached = None  # recount
                _log.error("spool file %s is unreadable; moved to quarantine/", path.name)
                continue
            try:
                write(records)
            except BaseException:
                os.rename(claimed, path)
                raise
            size = claimed.stat().st_size
            claimed.unlink()
            self._fsync_dir()
            self._adjust(-1, -len(records), -size)
            drained += len(records)
        return drained

    # -- internals ----------------------------------------------------------------------
    def _read(self, path: Path) -> list[AuditRecord]:
        try:
            data = json.loads(path.read_bytes())
            if data.get("format") != SPOOL_FORMAT:
                raise ValueError("unknown spool format")
            return [decode_record(item) for item in data["records"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpoolCorrupt(path.name) from exc

    def _release_dead_claims(self) -> None:
        for path in self.directory.iterdir():
            if path.is_dir():
                continue
            if path.name.endswith(".tmp"):
                path.unlink()  # never renamed: its append was not acknowledged
                continue
            if _CLAIM not in path.name:
                continue
            original, _, pid = path.name.partition(_CLAIM)
            if not pid.isdigit() or not _alive(int(pid)) or int(pid) == os.getpid():
                os.rename(path, self.directory / original)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _count_hint(path: Path) -> int:
    """The record count from the file's header (``{"format":1,"count":N,...``)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64).decode("ascii", "replace")
        return int(head.split('"count":', 1)[1].split(",", 1)[0])
    except (OSError, IndexError, ValueError):
        return 0


# -- record codec (JSON, no pickle: a spool file must never be able to run code) ----------
def encode_record(record: AuditRecord) -> dict[str, Any]:
    if record.user_id is not None:
        raise ValueError(f"record {record.id} still holds a plaintext user id: not spooled")
    out: dict[str, Any] = {}
    for f in fields(record):
        if f.name in _NOT_SPOOLED:
            continue
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        elif isinstance(value, ContentState):
            value = value.value
        elif isinstance(value, set):
            value = sorted(flag.value for flag in value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out


def decode_record(data: dict[str, Any]) -> AuditRecord:
    values = dict(data)
    values["event_timestamp"] = datetime.fromisoformat(values["event_timestamp"])
    values["total_cost"] = Decimal(values["total_cost"])
    values["prompt_hash"] = base64.b64decode(values["prompt_hash"])
    values["response_hash"] = base64.b64decode(values["response_hash"])
    values["content_state"] = ContentState(values["content_state"])
    values["flags"] = {Flag(flag) for flag in values["flags"]}
    values["finish_reasons"] = tuple(values["finish_reasons"])
    for name in ("producers", "merged_span_ids"):  # absent from spool files of before
        values[name] = tuple(values.get(name, ()))
    known = {f.name for f in fields(AuditRecord)} - _NOT_SPOOLED
    return AuditRecord(**{k: v for k, v in values.items() if k in known},
                       user_id=None, content=NO_CONTENT)
