"""Check an archive, and read it: ``verify_archive`` and ``attach_archive``.

``verify_archive`` trusts nothing in the bucket but the signature: the manifest must be signed
by the store's key; every object it lists must exist, hash to the recorded SHA-256, and hold
exactly the recorded rows (count and ``rows_sha256``, recomputed from the Parquet by
ClickHouse); and every archived row must be a leaf the ledger signed, and the manifest's
named ledger checkpoints must be in the store's signed chain (``archive_leaves``). Objects
under the prefix that the manifest does not list are reported as warnings (an interrupted run
leaves one; the next run overwrites it).

``attach_archive`` exposes the archived records of a verified manifest as the session's
temporary table ``archived_interactions`` (read on demand from the objects, never copied),
so read-only SQL can join or union them with ``interactions``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genai_audit.clickhouse.archive import RUNS, read_back, structure, table_columns
from genai_audit.clickhouse.archive_leaves import ArchivedLeafCheck
from genai_audit.clickhouse.archive_location import ArchiveAccessError, ArchiveLocation
from genai_audit.clickhouse.archive_manifest import MANIFEST_KEY, Manifest, open_signed
from genai_audit.clickhouse.dsn import validate_identifier
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger.log import CHECKPOINTS_TABLE
from genai_audit.clickhouse.store import Store

ARCHIVE_TABLE = "archived_interactions"


MAX_RECORDED = 1000  # problems kept in the archive_runs row (the rest are counted)


@dataclass(frozen=True)
class Problem:
    key: str  # the object (or manifest.json, or ledger_checkpoints) the problem is in
    # missing, hash_mismatch, rows_mismatch, unreadable, manifest; for archived rows:
    # modified, not_in_ledger, duplicate, unverifiable; checkpoint
    kind: str
    detail: str
    record_id: str | None = None
    log_id: str | None = None
    position: int | None = None

    def __str__(self) -> str:
        where = []
        if self.record_id:
            where.append(f"record {self.record_id}")
        if self.log_id:
            where.append(f"log {self.log_id}"
                         + ("" if self.position is None else f" position {self.position}"))
        return f"{self.key}: {self.kind}: " + (f"{', '.join(where)}: " if where else "") + \
            self.detail


@dataclass
class VerifyResult:
    url: str
    objects: int = 0
    rows: int = 0
    leaves: int = 0  # archived rows whose leaf was recomputed and matched against the ledger
    logs: int = 0  # ledger logs those rows belong to
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archive(store: Store, location: ArchiveLocation, public_key: Ed25519PublicKey, *,
                   key_name: str = notes.KEY_NAME, record: bool = True,
                   on_object: Callable[[int, int], None] | None = None) -> VerifyResult:
    """Check manifest signature, object hashes, archived rows and their leaves against the
    ledger's signed checkpoints (``key_name``: the checkpoints' signed-note key name). Never
    raises on tampering: every finding is a ``Problem``; raises only when the location
    cannot be reached."""
    started = datetime.now(UTC)
    result = VerifyResult(location.url)
    text = location.read_text(store, MANIFEST_KEY)
    if text is None:
        result.problems.append(Problem(MANIFEST_KEY, "missing", "no manifest at this location"))
    else:
        try:
            result.manifest = open_signed(text, public_key)
        except ValueError as exc:
            result.problems.append(Problem(MANIFEST_KEY, "manifest", str(exc)))
    if result.manifest is not None:
        leaves = ArchivedLeafCheck(store, public_key, key_name)
        _check_objects(store, location, result.manifest, result, leaves, on_object)
        _check_ledger(result.manifest, leaves, result)
    if record:
        with contextlib.suppress(StoreError):
            _record(store, location, result, started)
    return result


def _check_objects(store: Store, location: ArchiveLocation, manifest: Manifest,
                   result: VerifyResult, leaves: ArchivedLeafCheck,
                   on_object: Callable[[int, int], None] | None) -> None:
    present = location.list(store)
    listed = {o.key for o in manifest.objects}
    for index, obj in enumerate(manifest.objects):
        if on_object:
            on_object(index, len(manifest.objects))
        result.objects += 1
        if obj.key not in present:
            result.problems.append(Problem(obj.key, "missing", "object listed but not found"))
            continue
        try:
            sha, size = location.object_digest(store, obj.key)
            if sha != obj.sha256 or size != obj.bytes:
                result.problems.append(Problem(
                    obj.key, "hash_mismatch",
                    f"SHA-256 {sha[:16]}… ({size} bytes), manifest says {obj.sha256[:16]}… "
                    f"({obj.bytes} bytes)"))
                continue
            columns = manifest.schemas[obj.schema]
            rows, digest = read_back(store, location, obj.key, columns)
            if rows != obj.rows or digest != obj.rows_sha256:
                result.problems.append(Problem(obj.key, "rows_mismatch",
                                               f"{rows} rows, manifest says {obj.rows}"))
                continue
            result.rows += rows
            found = leaves.check_object(location, obj, columns)
        except (ArchiveAccessError, KeyError) as exc:
            result.problems.append(Problem(obj.key, "unreadable", str(exc)[:300]))
            continue
        result.problems += [Problem(obj.key, f.kind, f.detail, f.record_id, f.log_id,
                                    f.position) for f in found]
    for key in sorted(set(present) - listed - {MANIFEST_KEY}):
        result.warnings.append(f"{key}: not in the manifest (left by an interrupted run? "
                               "run archive again)")


def _check_ledger(manifest: Manifest, leaves: ArchivedLeafCheck, result: VerifyResult) -> None:
    """The manifest's named checkpoints, and what loading the signed history found."""
    if manifest.ledger_checkpoint is None:
        result.warnings.append("the manifest names no ledger checkpoint (written before "
                               "archives recorded one): rows were checked against the "
                               "store's signed checkpoints only")
    else:
        named = leaves.check_named(manifest.ledger_checkpoint)
        result.problems += [Problem(MANIFEST_KEY, f.kind, f.detail, None, f.log_id, f.position)
                            for f in named]
    result.problems += [Problem(CHECKPOINTS_TABLE, f.kind, f.detail, f.record_id, f.log_id,
                                f.position) for f in leaves.ledger_findings]
    result.leaves, result.logs = leaves.leaves, leaves.logs


def _record(store: Store, location: ArchiveLocation, result: VerifyResult,
            started: datetime) -> None:
    problems = [str(p) for p in result.problems[:MAX_RECORDED]]
    if len(result.problems) > MAX_RECORDED:
        problems.append(f"... and {len(result.problems) - MAX_RECORDED} more")
    store.insert(RUNS, [[str(uuid.uuid4()), "verify", location.url, started, None,
                         0, 0, result.rows, 0, result.ok, problems,
                         ""]],
                 ["run_id", "kind", "destination", "started_at", "cutoff", "objects_written",
                  "objects_skipped", "rows", "bytes", "ok", "problems", "manifest_sha256"])


def attach_archive(store: Store, location: ArchiveLocation, public_key: Ed25519PublicKey,
                   name: str = ARCHIVE_TABLE) -> Manifest:
    """Create the session's temporary table ``name`` over the manifest's objects."""
    text = location.read_text(store, MANIFEST_KEY)
    if text is None:
        raise ArchiveAccessError(f"no archive manifest at {location.url}")
    manifest = open_signed(text, public_key)
    validate_identifier(name, "table")
    store.command(f"DROP TEMPORARY TABLE IF EXISTS {name}")
    columns = table_columns(store)
    keys = [o.key for o in manifest.objects]
    if not keys:
        store.command(f"CREATE TEMPORARY TABLE {name} ({structure(columns)}) ENGINE = Memory")
        return manifest
    pattern = keys[0] if len(keys) == 1 else "{" + ",".join(keys) + "}"
    with location.guarded("cannot attach the archive"):
        store.command(f"CREATE TEMPORARY TABLE {name} ({structure(columns)}) "
                      f"ENGINE = {location.engine(pattern, 'Parquet')}")
    return manifest
