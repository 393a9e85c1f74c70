"""Archived rows against the ledger: every archived row must be a leaf the ledger signed.

The manifest's signature and the objects' SHA-256 prove the archive is what ``archive``
wrote. This proves what ``archive`` wrote is what the ledger signed, row by row, so a row
changed in the store *before* it was archived (the archive then copies it faithfully, and
every object hash and the manifest signature are valid) is still caught:

1. each archived object is read back through ClickHouse (``s3()`` / ``file()`` with the
   explicit column structure the manifest recorded for it, so Parquet values come back as
   the stored types) and every row's leaf hash is recomputed there with the SAME expression
   ``verify`` uses on the live table (``leaf.sql_leaf_hash``, per the row's leaf_version);
2. the leaves the ledger signed for each log are taken from the store's
   ``ledger_checkpoints`` (never dropped by retention): every checkpoint's signed note is
   checked, its consistency with the previous one, and that its list of added leaves
   reproduces its signed root (``ledger.verify.Verifier``, the one signature checker);
3. per archived row: the recomputed leaf must equal the leaf signed at the row's
   (log_id, log_index) and the row's stored ``leaf_hash``. Otherwise the row is
   ``modified``; ``not_in_ledger`` when no signed checkpoint covers its position (or it
   belongs to no log); ``duplicate`` when its log position is archived twice;
4. the manifest's ``ledger_checkpoint`` names each archived tenant's log heads at archive
   time: each note must be signed by the same key, for that log, and be a checkpoint the
   store still holds with the same root (a log rewritten and re-signed, or checkpoints
   deleted from the store, shows up here).

SQL text is assembled only from package constants (``leaf.compose``); the object's URL and
structure are bound parameters.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genai_audit.clickhouse.archive import structure
from genai_audit.clickhouse.archive_location import ArchiveLocation
from genai_audit.clickhouse.archive_manifest import ArchivedObject
from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger.leaf import (
    INTERACTIONS,
    LEDGER_COLUMNS,
    LeafSchema,
    compose,
    sql_leaf_hash,
)
from genai_audit.clickhouse.ledger.log import origin_for
from genai_audit.clickhouse.ledger.verify import Verifier, _Cp
from genai_audit.clickhouse.ledger.verify import VerifyResult as LedgerResult
from genai_audit.clickhouse.store import Store

MODIFIED, NOT_IN_LEDGER, DUPLICATE = "modified", "not_in_ledger", "duplicate"
UNVERIFIABLE, CHECKPOINT = "unverifiable", "checkpoint"


@dataclass(frozen=True)
class LeafFinding:
    kind: str
    detail: str
    log_id: str | None = None
    position: int | None = None
    record_id: str | None = None


@dataclass
class _SignedLog:
    """One log's authenticated leaves and which of its positions the archive holds."""

    log_id: str
    leaves: bytes  # 32 bytes per signed position, in order
    seen: bytearray = field(default_factory=bytearray)  # 1 per signed position archived
    seen_beyond: set[int] = field(default_factory=set)  # archived positions beyond them

    def leaf(self, position: int) -> bytes | None:
        if position * 32 + 32 > len(self.leaves):
            return None
        return self.leaves[position * 32:position * 32 + 32]

    def mark(self, position: int) -> bool:
        """Note ``position`` as archived; False when it already was."""
        if position < len(self.seen):
            if self.seen[position]:
                return False
            self.seen[position] = 1
            return True
        if position in self.seen_beyond:
            return False
        self.seen_beyond.add(position)
        return True


@dataclass(frozen=True)
class _ArchivedRow:
    record_id: str
    version: int
    stored: bytes  # its leaf_hash column
    recomputed: bytes  # its leaf hash recomputed from its columns


class ArchivedLeafCheck:
    """Checks archived objects' rows against the ledger's signed leaves (see module doc).

    One instance per archive verification: signed logs are loaded once and remember which
    positions were archived (to find duplicates across objects)."""

    def __init__(self, store: Store, public_key: Ed25519PublicKey,
                 key_name: str = notes.KEY_NAME, schema: LeafSchema = INTERACTIONS) -> None:
        self.store, self.public_key, self.key_name, self.schema = (
            store, public_key, key_name, schema)
        self.verifier = Verifier(store, public_key, key_name, [schema])
        self.leaves = 0  # archived rows whose leaf was recomputed and checked
        self._logs: dict[str, _SignedLog] = {}
        self._cps: dict[str, list[_Cp]] = {}  # valid checkpoints per log, ascending
        self._spans: dict[str, list[tuple[str, int, int]]] = {}  # log -> (key, lo, hi)
        self.ledger_findings: list[LeafFinding] = []  # about the signed history itself

    @property
    def logs(self) -> int:
        return len(self._logs)

    # -- one archived object ---------------------------------------------------------------
    def check_object(self, location: ArchiveLocation, obj: ArchivedObject,
                     columns: list[list[str]]) -> list[LeafFinding]:
        """Every row of ``obj`` against the signed leaves. Two reads: per log, the positions
        and recomputed leaves (compact, in position order), compared here; then the full
        rows at the positions that did not match, to name and classify them."""
        names = {name for name, _ in columns}
        missing = [c for c in LEDGER_COLUMNS if c not in names]
        if missing:
            return [LeafFinding(UNVERIFIABLE, f"archived without the ledger columns {missing}: "
                                "its rows cannot be matched to the ledger")]
        readable = _readable(self.schema, names)
        fn, params = location.function(obj.key, "Parquet", structure(columns))
        params = {**params, "versions": sorted(readable.versions)}
        with location.guarded(f"cannot read {obj.key}"):
            per_log = self.store.rows(compose(
                "SELECT log_id, arrayMap(x -> x.1, s), arrayStringConcat(arrayMap("
                "x -> hex(x.2), s)), suspects FROM (SELECT log_id, "
                "arraySort(groupArray((log_index, r))) AS s, groupArrayIf(log_index, "
                "r != leaf_hash OR leaf_version NOT IN {versions:Array(UInt8)}) AS suspects "
                "FROM (SELECT log_id, log_index, leaf_version, leaf_hash, <leaf> AS r "
                "FROM <fn>) GROUP BY log_id) ORDER BY log_id",
                leaf=sql_leaf_hash(readable), fn=fn), params)
        flagged: dict[str, set[int]] = {}
        prior: dict[str, set[int]] = {}  # positions already archived by an earlier object
        for log_id, positions, leaves_hex, suspects in per_log:
            log_id = str(log_id)
            leaves = bytes.fromhex(leaves_hex)
            if len(leaves) != 32 * len(positions):
                raise ValueError(f"{obj.key}: leaf hashes are not 32 bytes each")
            self.leaves += len(positions)
            if positions:
                self._spans.setdefault(log_id, []).append((obj.key, positions[0], positions[-1]))
            flagged[log_id], prior[log_id] = self._mismatches(log_id, positions, leaves,
                                                              set(suspects))
        return self._named_rows(location, obj, fn, params, readable, flagged, prior)

    def _mismatches(self, log_id: str, positions: list[int], leaves: bytes,
                    suspects: set[int]) -> tuple[set[int], set[int]]:
        """Positions whose rows need a closer look, and those archived before this object."""
        if not log_id:  # rows around the ledger: every one is named
            return set(positions), set()
        log = self._log(log_id)
        signed, count = log.leaves, len(log.leaves) // 32
        flagged: set[int] = set()
        prior: set[int] = set()
        last = -1
        for i, p in enumerate(positions):
            if p == last:  # the same position twice in this object
                flagged.add(p)
                continue
            last = p
            if not log.mark(p):
                prior.add(p)
                flagged.add(p)
            elif p in suspects or p >= count or \
                    signed[32 * p:32 * p + 32] != leaves[32 * i:32 * i + 32]:
                flagged.add(p)
        return flagged, prior

    def _named_rows(self, location: ArchiveLocation, obj: ArchivedObject, fn: str,
                    params: dict[str, Any], readable: LeafSchema, flagged: dict[str, set[int]],
                    prior: dict[str, set[int]]) -> list[LeafFinding]:
        logs = sorted(log_id for log_id, positions in flagged.items() if positions)
        if not logs:
            return []
        with location.guarded(f"cannot read {obj.key}"):
            rows = self.store.rows(compose(
                "SELECT log_id, log_index, toString(id), leaf_version, leaf_hash, <leaf> "
                "FROM <fn> WHERE has({positions:Array(Array(UInt64))}"
                "[indexOf({logs:Array(String)}, log_id)], log_index) "
                "ORDER BY log_id, log_index, id", leaf=sql_leaf_hash(readable), fn=fn),
                {**params, "logs": logs,
                 "positions": [sorted(flagged[log_id]) for log_id in logs]})
        at: dict[tuple[str, int], list[_ArchivedRow]] = {}
        for log_id, position, record_id, version, stored, recomputed in rows:
            at.setdefault((str(log_id), int(position)), []).append(_ArchivedRow(
                str(record_id), int(version), bytes(stored), bytes(recomputed)))
        findings: list[LeafFinding] = []
        for (log_id, position), copies in at.items():
            if not log_id:
                findings += [LeafFinding(NOT_IN_LEDGER, "written around the ledger: the row "
                                         "belongs to no log", None, None, r.record_id)
                             for r in copies]
                continue
            findings += self._classify(obj.key, log_id, position, copies,
                                       position in prior[log_id], readable)
        return findings

    def _classify(self, key: str, log_id: str, position: int, copies: list[_ArchivedRow],
                  archived_before: bool, readable: LeafSchema) -> list[LeafFinding]:
        """The rows of one log position in one object: the one matching the signed leaf (if
        any) is judged first; every further copy of the position is a duplicate."""
        log = self._log(log_id)
        signed = log.leaf(position)
        copies = sorted(copies, key=lambda r: not (r.recomputed == signed == r.stored))
        out: list[LeafFinding] = []
        for i, row in enumerate(copies):
            if archived_before or i > 0:
                where = ", ".join(k for k, lo, hi in self._spans.get(log_id, [])
                                  if lo <= position <= hi and (k != key or i > 0)) or key
                what = ("another copy of the signed record" if row.recomputed == signed
                        else "a different row at that position")
                out.append(LeafFinding(DUPLICATE, f"log position archived twice ({what}; see "
                                       f"{where})", log_id, position, row.record_id))
                continue
            finding = self._judge(log, position, row, readable)
            if finding is not None:
                out.append(finding)
        return out

    def _judge(self, log: _SignedLog, position: int, row: _ArchivedRow,
               readable: LeafSchema) -> LeafFinding | None:
        log_id, record_id = log.log_id, row.record_id
        if row.version not in readable.versions:
            why = ("unknown leaf version" if row.version not in self.schema.versions else
                   "this object lacks columns that leaf version covers")
            return LeafFinding(UNVERIFIABLE, f"leaf version {row.version}: {why}", log_id,
                               position, record_id)
        own = "" if row.stored == row.recomputed else \
            " (its stored leaf_hash no longer matches its columns either)"
        signed = log.leaf(position)
        if signed is None:
            newest = max((cp.size for cp in self._checkpoints(log_id)), default=0)
            return LeafFinding(NOT_IN_LEDGER, "no valid signed checkpoint of this log covers "
                               f"this position (the store's signed leaves end at "
                               f"{len(log.leaves) // 32}, newest checkpoint size {newest})"
                               + own, log_id, position, record_id)
        if row.recomputed == signed:
            if row.stored == signed:
                return None
            return LeafFinding(MODIFIED, "its stored leaf_hash was altered (its columns match "
                               "the signed leaf)", log_id, position, record_id)
        signed_id = self._signed_record_id(log_id, position)
        replaced = (f"; position {position} was signed for record {signed_id}"
                    if signed_id and signed_id != record_id else "")
        return LeafFinding(MODIFIED, "archived columns differ from the leaf the ledger signed "
                           "at this position" + replaced + own, log_id, position, record_id)

    def _log(self, log_id: str) -> _SignedLog:
        log = self._logs.get(log_id)
        if log is None:
            cps = self._checkpoints(log_id)
            result = LedgerResult()
            leaves = self.verifier.signed_leaves(log_id, cps, result)
            self._collect(result)
            log = _SignedLog(log_id, b"".join(leaves), bytearray(len(leaves)))
            self._logs[log_id] = log
        return log

    def _signed_record_id(self, log_id: str, position: int) -> str | None:
        """The record id the checkpoint that added ``position`` lists for it (informational:
        record ids are stored beside the signed leaves, not signed themselves)."""
        raw = self.store.scalar(
            "SELECT hex(substring(record_ids, ({p:UInt64} - prev_size) * 16 + 1, 16)) "
            "FROM ledger_checkpoints WHERE log_id = {log:String} AND prev_size <= {p:UInt64} "
            "AND tree_size > {p:UInt64} ORDER BY tree_size LIMIT 1",
            {"log": log_id, "p": position})
        data = bytes.fromhex(str(raw or ""))
        return str(uuid.UUID(bytes=data)) if len(data) == 16 and any(data) else None

    def _checkpoints(self, log_id: str) -> list[_Cp]:
        if log_id not in self._cps:
            result = LedgerResult()
            self._cps[log_id] = self.verifier.signed_checkpoints([log_id], result).get(log_id,
                                                                                        [])
            self._collect(result)
        return self._cps[log_id]

    def _collect(self, result: LedgerResult) -> None:
        for f in result.findings:
            self.ledger_findings.append(LeafFinding(CHECKPOINT, f.detail, f.log_id, f.position,
                                                    f.record_id))

    # -- the manifest's named checkpoints --------------------------------------------------
    def check_named(self, anchor: Any) -> list[LeafFinding]:
        """``manifest.ledger_checkpoint`` (``{"logs": [{log_id, tree_size, note}]}``):
        every note signed by the ledger key, for its log, and in the store's chain."""
        if not isinstance(anchor, dict) or not isinstance(anchor.get("logs"), list):
            return [LeafFinding(CHECKPOINT, "the manifest's ledger_checkpoint is not a list "
                                "of signed log checkpoints")]
        out: list[LeafFinding] = []
        for entry in anchor["logs"]:
            try:
                log_id, size, note = (str(entry["log_id"]), int(entry["tree_size"]),
                                      str(entry["note"]))
            except (KeyError, TypeError, ValueError):
                out.append(LeafFinding(CHECKPOINT, "malformed entry in the manifest's "
                                       "ledger_checkpoint"))
                continue
            problem = self._named_problem(log_id, size, note)
            if problem:
                out.append(LeafFinding(CHECKPOINT, f"checkpoint at size {size} named by the "
                                       f"manifest: {problem}", log_id, size))
        return out

    def _named_problem(self, log_id: str, size: int, note: str) -> str:
        try:
            cp = notes.open_note(note, self.public_key, self.key_name)
        except notes.NoteError as exc:
            return f"not signed by the ledger key ({exc})"
        if cp.origin != origin_for(self.store.database, log_id):
            return f"signed for another log ({cp.origin})"
        if cp.size != size:
            return f"its note signs size {cp.size}"
        held = {cp.size: cp.root for cp in self._checkpoints(log_id)}
        if size not in held:
            newest = max(held, default=None)
            return ("the store no longer holds this checkpoint (" + (
                f"its newest valid checkpoint of this log is at size {newest}"
                if newest is not None else "it holds no valid checkpoint of this log") + ")")
        if held[size] != cp.root:
            return ("the store's checkpoint at this size has another root: the log was "
                    "rewritten and re-signed (signing key misused?)")
        return ""


def _readable(schema: LeafSchema, names: set[str]) -> LeafSchema:
    """``schema`` restricted to the leaf versions whose columns (and, for a version with a
    content digest, the content columns it covers) all exist in ``names``, so the leaf
    expression compiles on an object archived before a column was added."""
    def needs(version: int) -> set[str]:
        digest = schema.digests.get(version)
        return set(schema.columns(version)) | set(digest.covers if digest else ())

    versions = {v: fields for v, fields in schema.versions.items() if needs(v) <= names}
    return dataclasses.replace(schema, versions=versions)
