"""Check an archive, and read it: ``verify_archive`` and ``attach_archive``.

``verify_archive`` trusts nothing in the bucket but the signature: the manifest must be signed
by the store's key; every object it lists must exist, hash to the recorded SHA-256, and hold
exactly the recorded rows (count and ``rows_sha256``, recomputed from the Parquet by
ClickHouse). Objects under the prefix that the manifest does not list are reported as
warnings (an interrupted run leaves one; the next run overwrites it).

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
from genai_audit.clickhouse.archive_location import ArchiveAccessError, ArchiveLocation
from genai_audit.clickhouse.archive_manifest import MANIFEST_KEY, Manifest, open_signed
from genai_audit.clickhouse.dsn import validate_identifier
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.store import Store

ARCHIVE_TABLE = "archived_interactions"


@dataclass(frozen=True)
class Problem:
    key: str
    kind: str  # missing, hash_mismatch, rows_mismatch, unreadable, manifest
    detail: str

    def __str__(self) -> str:
        return f"{self.key}: {self.kind}: {self.detail}"


@dataclass
class VerifyResult:
    url: str
    objects: int = 0
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archive(store: Store, location: ArchiveLocation, public_key: Ed25519PublicKey, *,
                   record: bool = True,
                   on_object: Callable[[int, int], None] | None = None) -> VerifyResult:
    """Check manifest signature, object hashes and archived rows. Never raises on tampering:
    every finding is a ``Problem``; raises only when the location cannot be reached."""
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
        _check_objects(store, location, result.manifest, result, on_object)
    if record:
        with contextlib.suppress(StoreError):
            _record(store, location, result, started)
    return result


def _check_objects(store: Store, location: ArchiveLocation, manifest: Manifest,
                   result: VerifyResult, on_object: Callable[[int, int], None] | None) -> None:
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
            rows, digest = read_back(store, location, obj.key, manifest.schemas[obj.schema])
        except (ArchiveAccessError, KeyError) as exc:
            result.problems.append(Problem(obj.key, "unreadable", str(exc)[:300]))
            continue
        if rows != obj.rows or digest != obj.rows_sha256:
            result.problems.append(Problem(obj.key, "rows_mismatch",
                                           f"{rows} rows, manifest says {obj.rows}"))
            continue
        result.rows += rows
    for key in sorted(set(present) - listed - {MANIFEST_KEY}):
        result.warnings.append(f"{key}: not in the manifest (left by an interrupted run? "
                               "run archive again)")


def _record(store: Store, location: ArchiveLocation, result: VerifyResult,
            started: datetime) -> None:
    store.insert(RUNS, [[str(uuid.uuid4()), "verify", location.url, started, None,
                         0, 0, result.rows, 0, result.ok, [str(p) for p in result.problems],
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
