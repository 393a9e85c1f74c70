"""``verify``: recompute every leaf in SQL and every root against the signed checkpoints.

Every table under the ledger (``leaf.SCHEMAS``: interactions, subject_erasures, access_log)
is checked in turn; each finding names its table. For each log (one query per chunk of
logs, vectorised in ClickHouse):

1. every checkpoint's signed note is checked with the public key, against its own row, and
   for consistency with the checkpoint before it (the stored RFC 9162 consistency proof);
2. every row's leaf hash is recomputed from its columns (``leaf.sql_leaf_hash``), the
   leaves are ordered by position and the tree is reduced level by level in SQL, giving the
   root at the latest valid checkpoint's size (and at any externally anchored size);
3. if the positions are exactly 0..n-1, every stored leaf hash equals its recomputed one and
   every root matches its signature, the log is intact: fast path, no per-row transfer;
4. otherwise the log is diagnosed row by row: the leaves each checkpoint says it added are
   authenticated against the signed roots, and each position is compared with its row, so
   each finding names the record (id, position) and what happened to it.

Rows after a log's latest checkpoint are "unanchored": only their own leaf hash and their
positions can be checked. They are warnings while they are younger than ``unsigned_grace``
(a writer may still be about to sign them: twice the checkpoint interval and a margin, by
each row's arrival time) and findings after that, or always under ``strict``.

Signed metadata. Each checkpoint note signs (extension line ``genai-audit/meta/v1``) its
previous size and a hash of the record ids, expiry times and event times it lists. Verify
prints a record id from a checkpoint, or accepts a missing row as expired, only when that
checkpoint's metadata verifies; expiry is judged against ``clock`` (a row gone before its
signed expiry is ``deleted``). A row past its expiry that a legal hold still covers must
have its copy in ``held_interactions``, matching the signed leaf.

The log of logs. Each writer session signs, with every round of checkpoints, one more
entry per checkpoint (log id, size, root) in its own log (``ledger/<table>/<writer>``). A
data log that such an entry names beyond the log's newest checkpoint in the store lost its
checkpoints: a finding, and the root the entry signed is checked against the rows.

Rows outside every log (``log_id = ''``: written around the ledger) are findings, except in
a table that came under the ledger later (``LeafSchema.since_migration``): there the rows
dated between the store's creation and that migration predate the ledger and are warnings
(``legacy``; findings under ``strict``).

``--from``/``--to`` select the logs with a row in the period by each table's own time column
(``LeafSchema.time_column``: event_timestamp, erased_at, accessed_at); each selected log is
verified whole.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genai_audit.clickhouse import holds
from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger import merkle
from genai_audit.clickhouse.ledger.leaf import (
    INTERACTIONS,
    SCHEMAS,
    LeafSchema,
    compose,
    sql_leaf_hash,
)
from genai_audit.clickhouse.ledger.log import LOG_OF_LOGS, META_PREFIX, origin_for
from genai_audit.clickhouse.reports.integrity import VerifyOutcome
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store, period_conditions
from genai_audit.clock import SYSTEM_CLOCK, Clock

MODIFIED, DELETED, INSERTED, REORDERED, TRUNCATED = (
    "modified", "deleted", "inserted", "reordered", "truncated")
CHECKPOINT, UNANCHORED, EXPIRED, LEGACY = "checkpoint", "unanchored", "expired", "legacy"
CHUNK_RECORDS = 2_000_000


def unsigned_grace(checkpoint_seconds: float) -> float:
    """How long a committed record may wait for its checkpoint: the timer signs a log at
    most two intervals after a commit; plus a margin for a slow insert."""
    return 2 * checkpoint_seconds + 30


UNSIGNED_GRACE = unsigned_grace(30.0)
MAX_NAMED = 1_000  # records named one by one per log when a range lost its checkpoints
_META_SQL = ("concat(hex(SHA256(concat(toString(length(record_ids)), ':', record_ids, ','))), "
             "hex(SHA256(concat(toString(length(record_expires)), ':', record_expires, ',', "
             "toString(length(record_events)), ':', record_events, ','))))")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Finding:
    kind: str
    log_id: str
    position: int | None = None
    record_id: str | None = None
    detail: str = ""
    table: str = ""  # the table the log (or the row) belongs to


@dataclass
class TableCount:
    logs: int = 0
    records: int = 0
    checkpoints: int = 0


@dataclass
class VerifyResult:
    logs: int = 0
    records: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    tables: dict[str, TableCount] = field(default_factory=dict)  # per table, in check order

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class _Cp:
    size: int
    root: bytes
    prev_size: int
    proof: tuple[bytes, ...]
    meta: bool | None = None  # its record ids are signed and match (True), signed and
    # altered (False), or from before they were signed (None)
    times: bool | None = None  # the same for its expiry and event times


@dataclass
class _LogStats:
    n: int = 0
    lo: int = 0
    hi: int = -1
    uniq: int = 0
    bad: int = 0
    oldest_unsigned: float = 0.0  # arrival (unix seconds) of the oldest unsigned row
    roots: dict[int, bytes] = field(default_factory=dict)


class Verifier:
    def __init__(self, store: Store, public_key: Ed25519PublicKey,
                 key_name: str = notes.KEY_NAME,
                 schemas: Sequence[LeafSchema] = tuple(SCHEMAS.values()),
                 progress: Callable[[int], None] | None = None,
                 chunk_records: int = CHUNK_RECORDS, clock: Clock = SYSTEM_CLOCK,
                 unsigned_grace: float = UNSIGNED_GRACE) -> None:
        self.store, self.public_key, self.key_name = store, public_key, key_name
        self.schemas = tuple(schemas)
        self.progress = progress or (lambda _n: None)
        self.chunk_records = chunk_records
        self.clock = clock
        self.unsigned_grace = unsigned_grace
        self._heads: dict[str, tuple[int, bytes, str]] = {}
        self._use(self.schemas[0] if self.schemas else INTERACTIONS)

    def _use(self, schema: LeafSchema) -> None:
        self.schema = schema
        self._leaf_sql = sql_leaf_hash(schema)

    # -- entry point ------------------------------------------------------------------
    def run(self, tenant: str | None = None, since: datetime | None = None,
            until: datetime | None = None, anchors: Sequence[tuple[str, str]] = (),
            strict: bool = False) -> VerifyResult:
        """Every table in ``schemas``, one after the other, into one result."""
        result = VerifyResult()
        for schema in self.schemas:
            self._use(schema)
            findings, warnings = len(result.findings), len(result.warnings)
            before = (result.logs, result.records, result.checkpoints)
            self._run_table(tenant, since, until, anchors, strict, result)
            result.tables[schema.table] = TableCount(*(
                now - then for now, then in zip(
                    (result.logs, result.records, result.checkpoints), before, strict=True)))
            result.findings[findings:] = [replace(f, table=schema.table)
                                          for f in result.findings[findings:]]
            result.warnings[warnings:] = [replace(f, table=schema.table)
                                          for f in result.warnings[warnings:]]
        return result

    def _run_table(self, tenant: str | None, since: datetime | None, until: datetime | None,
                   anchors: Sequence[tuple[str, str]], strict: bool,
                   result: VerifyResult) -> None:
        self._heads = self._log_of_logs(result)
        counts = self._select_logs(tenant, since, until, anchors, strict, result)
        cps = self._checkpoints(list(counts), result)
        anchored = self._anchors(anchors, counts, result)
        for log_id in counts:
            head = self._heads.get(log_id)
            if head is not None:
                size, root, origin = head
                anchored[log_id].append(notes.Checkpoint(origin, size, root, ("head",)))
        result.logs += len(counts)
        chunk: list[str] = []
        total = 0
        for log_id in sorted(counts):
            chunk.append(log_id)
            total += counts[log_id]
            if total >= self.chunk_records:
                self._check_chunk(chunk, counts, cps, anchored, strict, result)
                chunk, total = [], 0
        if chunk:
            self._check_chunk(chunk, counts, cps, anchored, strict, result)

    # -- the signed history alone (for copies of the rows: archive verify) -------------
    def signed_checkpoints(self, logs: Sequence[str],
                           result: VerifyResult) -> dict[str, list[_Cp]]:
        """Each log's checkpoints whose signed note verifies, ascending, each checked for
        consistency with the one before it; every bad one becomes a finding in ``result``."""
        return self._checkpoints(list(logs), result)

    def signed_leaves(self, log_id: str, cps: Sequence[_Cp],
                      result: VerifyResult) -> list[bytes]:
        """The leaves the checkpoints ``cps`` (from ``signed_checkpoints``) signed, position
        by position. Each checkpoint's list of added leaves must reproduce its signed root;
        the answer stops before the first one that does not (a finding in ``result``), so
        every leaf returned is authenticated."""
        leaves, _ = _Diagnosis(self, log_id, list(cps), [], False, result)._authenticated(
            {}, details=False)
        return leaves

    def total_records(self, tenant: str | None = None) -> int:
        """Rows in every checked table (for a progress bar)."""
        where, params = ("WHERE tenant_id = {t:String}", {"t": tenant}) if tenant else ("", {})
        return sum(int(self.store.scalar(compose("SELECT count() FROM <table> <where>",
                                                 table=schema.table, where=where),
                                         params) or 0)
                   for schema in self.schemas)

    # -- which logs --------------------------------------------------------------------
    def _select_logs(self, tenant: str | None, since: datetime | None, until: datetime | None,
                     anchors: Sequence[tuple[str, str]], strict: bool,
                     result: VerifyResult) -> dict[str, int]:
        table, time_column = self.schema.table, f"`{self.schema.time_column}`"
        conds, params = period_conditions(time_column, since, until)
        if tenant is not None:
            conds.append("tenant_id = {tenant:String}")
            params["tenant"] = tenant
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        logs = {str(r[0]) for r in self.store.rows(
            compose("SELECT DISTINCT log_id FROM <table> <where>", table=table, where=where),
            params)}
        if since is None and until is None:  # logs whose rows may all be gone
            cp_sql = ("SELECT DISTINCT log_id FROM ledger_checkpoints "
                      "WHERE source_table = {table:String}")
            if tenant is not None:
                cp_sql += " AND tenant_id = {tenant:String}"
            logs |= {str(r[0]) for r in self.store.rows(cp_sql, {**params, "table": table})}
            prefix = f"{table}/{quote(tenant, safe='')}/" if tenant is not None else f"{table}/"
            logs |= {log_id for log_id, _ in anchors if log_id.startswith(prefix)}
            logs |= {log_id for log_id in self._heads if log_id.startswith(prefix)}
        if "" in logs:
            logs.discard("")
            self._outside_logs(conds, params, strict, result)
        counts = dict.fromkeys(logs, 0)
        if logs:
            for log_id, n in self.store.rows(
                    compose("SELECT log_id, count() FROM <table> "
                            "WHERE log_id IN {logs:Array(String)} GROUP BY log_id", table=table),
                    {"logs": sorted(logs)}):
                counts[str(log_id)] = int(n)
        return counts

    def _outside_logs(self, conds: list[str], params: dict[str, object], strict: bool,
                      result: VerifyResult) -> None:
        """Rows in no log: written around the ledger, or, in a table the ledger took over
        later, written before it did (dated after the store was created and before the
        migration that brought the table under the ledger; on a store created with that
        migration the window is empty)."""
        created, covered = self._legacy_window()
        sql = compose("SELECT toString(<id>), <time> >= {created:DateTime64(6, 'UTC')} AND "
                      "<time> < {covered:DateTime64(6, 'UTC')} FROM <table> "
                      "WHERE log_id = '' <and> ORDER BY <time>",
                      id=f"`{self.schema.id_column}`", time=f"`{self.schema.time_column}`",
                      table=self.schema.table, **{"and": "".join(" AND " + c for c in conds)})
        for record_id, legacy in self.store.rows(sql, {**params, "created": created,
                                                       "covered": covered}):
            if legacy:
                finding = Finding(LEGACY, "", None, str(record_id),
                                  f"written before the ledger covered {self.schema.table} "
                                  f"(migration {self.schema.since_migration:03d}, applied "
                                  f"{covered:%Y-%m-%d %H:%M} UTC): not tamper-evident")
                (result.findings if strict else result.warnings).append(finding)
            else:
                result.findings.append(Finding(INSERTED, "", None, str(record_id),
                                               "record belongs to no log (written around "
                                               "the ledger)"))

    def _legacy_window(self) -> tuple[datetime, datetime]:
        """[store created, table brought under the ledger): empty when that was at once."""
        created, covered, known = self.store.rows(
            "SELECT min(applied_at), minIf(applied_at, version = {v:UInt32}), "
            "countIf(version = {v:UInt32}) FROM schema_migrations",
            {"v": self.schema.since_migration})[0]
        if not known:
            return _EPOCH, _EPOCH
        return _aware(created), _aware(covered)

    # -- checkpoints -------------------------------------------------------------------
    def _checkpoints(self, logs: list[str], result: VerifyResult) -> dict[str, list[_Cp]]:
        """Valid checkpoints per log, ascending; every invalid one becomes a finding."""
        valid: dict[str, list[_Cp]] = defaultdict(list)
        if not logs:
            return valid
        rows = self.store.rows(
            compose("SELECT log_id, tree_size, hex(root_hash), prev_size, "
                    "arrayMap(x -> hex(x), consistency_proof), note, <meta> "
                    "FROM ledger_checkpoints WHERE log_id IN {logs:Array(String)} "
                    "ORDER BY log_id, tree_size", meta=_META_SQL),
            {"logs": logs})
        for log_id, size, root_hex, prev_size, proof_hex, note, meta_hex in rows:
            if not str(log_id).startswith(LOG_OF_LOGS + "/"):
                result.checkpoints += 1
            cp = self._check_note(str(log_id), str(note), int(size), bytes.fromhex(root_hex),
                                  result)
            if cp is None:
                continue
            current = _Cp(cp.size, cp.root, int(prev_size),
                          tuple(bytes.fromhex(h) for h in proof_hex),
                          *self._check_meta(str(log_id), cp, int(prev_size),
                                            bytes.fromhex(meta_hex), result))
            previous = valid[str(log_id)][-1] if valid[str(log_id)] else None
            if previous is not None and previous.size == current.prev_size and not (
                    merkle.verify_consistency(previous.size, current.size, previous.root,
                                              current.root, current.proof)):
                result.findings.append(Finding(
                    CHECKPOINT, str(log_id), current.size, None,
                    f"checkpoint at size {current.size} is not consistent with the one at "
                    f"{previous.size} (the log was forked, or the proof row altered)"))
            valid[str(log_id)].append(current)
        return valid

    def _check_note(self, log_id: str, note: str, size: int, root: bytes,
                    result: VerifyResult) -> notes.Checkpoint | None:
        try:
            cp = notes.open_note(note, self.public_key, self.key_name)
        except notes.NoteError as exc:
            result.findings.append(Finding(CHECKPOINT, log_id, size, None,
                                           f"checkpoint at size {size}: {exc}"))
            return None
        problems = []
        if cp.origin != origin_for(self.store.database, log_id):
            problems.append(f"signed for another log ({cp.origin})")
        if cp.size != size or cp.root != root:
            problems.append("row columns disagree with the signed note (row altered)")
        if problems:
            result.findings.append(Finding(CHECKPOINT, log_id, size, None,
                                           f"checkpoint at size {size}: {'; '.join(problems)}"))
            return None if cp.origin != origin_for(self.store.database, log_id) else cp
        return cp

    @staticmethod
    def _check_meta(log_id: str, cp: notes.Checkpoint, prev_size: int, digest: bytes,
                    result: VerifyResult) -> tuple[bool | None, bool | None]:
        """(record ids, times): True when the note signs this row's previous size and
        that part of its leaf metadata; False and a finding when it signs something else
        (the row's record list or expiry times altered). Checkpoints written before
        metadata was signed have no such line: None."""
        lines = [x for x in cp.extensions if x.startswith(META_PREFIX + " ")]
        if not lines:
            return None, None
        try:
            _, prev, b64 = lines[0].split(" ")
            signed = base64.b64decode(b64, validate=True)
            same_prev = int(prev) == prev_size
        except (ValueError, binascii.Error):
            signed, same_prev = b"", False
        ids_ok = same_prev and signed[:32] == digest[:32]
        times_ok = same_prev and len(signed) == 64 and signed[32:] == digest[32:]
        for ok, what in ((ids_ok, "record ids"), (times_ok, "expiry or event times")):
            if not ok:
                result.findings.append(Finding(
                    CHECKPOINT, log_id, cp.size, None,
                    f"checkpoint at size {cp.size}: its {what} (or previous size) differ from "
                    "what its note signed (row altered)"))
        return ids_ok, times_ok

    def _log_of_logs(self, result: VerifyResult) -> dict[str, tuple[int, bytes, str]]:
        """What the writer sessions' logs of logs signed for each log of this table: the
        largest (size, root) and the log's origin. A log of logs whose own chain of
        checkpoints has a gap (some deleted) is a finding."""
        prefix = f"{LOG_OF_LOGS}/{quote(self.schema.table, safe='')}/"
        heads = [str(r[0]) for r in self.store.rows(
            "SELECT DISTINCT log_id FROM ledger_checkpoints WHERE source_table = {s:String} "
            "AND startsWith(log_id, {p:String})", {"s": LOG_OF_LOGS, "p": prefix})]
        out: dict[str, tuple[int, bytes, str]] = {}
        if not heads:
            return out
        cps = self._checkpoints(heads, result)
        entries = self.store.rows(
            "SELECT log_id, tree_size, hex(record_ids) FROM ledger_checkpoints "
            "WHERE log_id IN {logs:Array(String)} ORDER BY log_id, tree_size",
            {"logs": heads})
        listed = {(str(h), int(size)): blob for h, size, blob in entries}
        for head in heads:
            size = 0
            for cp in cps.get(head, []):
                if cp.prev_size != size or not cp.meta:
                    self._gap(head, size, cp, result)
                size = cp.size
                if not cp.meta:
                    continue
                for log_id, n, root in _entries(bytes.fromhex(listed.get((head, cp.size), ""))):
                    if n > out.get(log_id, (0, b"", ""))[0]:
                        out[log_id] = (n, root, origin_for(self.store.database, log_id))
        return out

    @staticmethod
    def _gap(head: str, size: int, cp: _Cp, result: VerifyResult) -> None:
        if cp.prev_size != size:
            result.findings.append(Finding(
                CHECKPOINT, head, size, None,
                f"log of logs: its checkpoints for positions {size}..{cp.prev_size - 1} were "
                "deleted (the logs signed in that time can no longer be checked for deleted "
                "checkpoints)"))

    def _anchors(self, anchors: Sequence[tuple[str, str]], counts: dict[str, int],
                 result: VerifyResult) -> dict[str, list[notes.Checkpoint]]:
        out: dict[str, list[notes.Checkpoint]] = defaultdict(list)
        for log_id, note in anchors:
            if log_id not in counts:
                continue
            try:
                cp = notes.open_note(note, self.public_key, self.key_name)
            except notes.NoteError as exc:
                result.findings.append(Finding(CHECKPOINT, log_id, None, None,
                                               f"exported checkpoint: {exc}"))
                continue
            out[log_id].append(cp)
        return out

    # -- rows ----------------------------------------------------------------------------
    def _check_chunk(self, logs: list[str], counts: dict[str, int],
                     cps: dict[str, list[_Cp]], anchored: dict[str, list[notes.Checkpoint]],
                     strict: bool, result: VerifyResult) -> None:
        sizes = {log_id: sorted({0} | ({cps[log_id][-1].size} if cps.get(log_id) else set())
                                | {a.size for a in anchored.get(log_id, [])})
                 for log_id in logs}
        stats = self._tree_stats(logs, sizes)
        for log_id in logs:
            st = stats.get(log_id, _LogStats())
            result.records += st.n
            self._judge(log_id, st, cps.get(log_id, []), anchored.get(log_id, []), strict,
                        result)
        self.progress(sum(counts[log_id] for log_id in logs))

    def _tree_stats(self, logs: list[str], sizes: dict[str, list[int]]) -> dict[str, _LogStats]:
        # One column (st) carries the statistics up through the levels: selecting several
        # carried columns at the top makes ClickHouse's analyzer time grow 4x per level.
        levels = max(1, max(max(s) for s in sizes.values()).bit_length())
        inner = compose(
            "SELECT tuple(log_id, n, lo, hi, uniq, bad, size, oldest) AS st,"
            " arraySlice(leaves, 1, size) AS l0 FROM ("
            " SELECT log_id, count() AS n, min(log_index) AS lo, max(log_index) AS hi,"
            " uniqExact(log_index) AS uniq, countIf(r != leaf_hash) AS bad,"
            " toUnixTimestamp64Micro(minIf(t, log_index >= transform(toString(log_id),"
            " {logs:Array(String)}, {signed:Array(UInt64)}, toUInt64(0)))) AS oldest,"
            " arraySort((h, i) -> i, groupArray(r), groupArray(log_index)) AS leaves"
            " FROM (SELECT log_id, log_index, leaf_hash, <leaf> AS r,"
            " toDateTime64(<arrival>, 6, 'UTC') AS t"
            " FROM <table> WHERE log_id IN {logs:Array(String)})"
            " GROUP BY log_id"
            ") ARRAY JOIN {sizes:Array(Array(UInt64))}[indexOf({logs:Array(String)}, log_id)]"
            " AS size", leaf=self._leaf_sql, table=self.schema.table,
            arrival=f"`{self.schema.arrival_column}`")
        for k in range(1, levels + 1):
            inner = compose(
                "SELECT st, arrayFilter((x, i) -> i % 2 = 1, <p>, arrayEnumerate(<p>)) AS o,"
                " arrayFilter((x, i) -> i % 2 = 0, <p>, arrayEnumerate(<p>)) AS e,"
                " arrayConcat(arrayMap((a, b) -> SHA256(concat(char(1), a, b)),"
                " arraySlice(o, 1, length(e)), e), if(length(o) > length(e), [o[-1]], []))"
                " AS <level> FROM (<inner>)", p=f"l{k - 1}", level=f"l{k}", inner=inner)
        sql = compose("SELECT st, hex(<top>[1]) FROM (<inner>)", top=f"l{levels}", inner=inner)
        out: dict[str, _LogStats] = {}
        for st, root_hex in self.store.rows(
                sql, {"logs": logs, "sizes": [sizes[log_id] for log_id in logs],
                      "signed": [max(sizes[log_id]) for log_id in logs]}):
            log_id, n, lo, hi, uniq, bad, size, oldest = st
            stats = out.setdefault(str(log_id), _LogStats(int(n), int(lo), int(hi), int(uniq),
                                                          int(bad), int(oldest) / 1e6))
            if int(size) <= int(n):
                stats.roots[int(size)] = bytes.fromhex(root_hex) if size else merkle.EMPTY_ROOT
        return out

    def _judge(self, log_id: str, st: _LogStats, cps: list[_Cp],
               anchored: list[notes.Checkpoint], strict: bool, result: VerifyResult) -> None:
        contiguous = st.n == st.uniq and st.lo == 0 and st.hi == st.n - 1
        signed = cps[-1] if cps else None
        fast = contiguous and st.bad == 0
        if signed is not None:
            fast = fast and st.roots.get(signed.size) == signed.root
        newest = signed.size if signed else 0
        for a in anchored:
            fast = fast and st.roots.get(a.size) == a.root
            if a.size <= newest:
                continue
            if _is_head(a):  # the log of logs signed more than the store still holds
                result.findings.append(Finding(
                    CHECKPOINT, log_id, a.size, None,
                    f"checkpoints deleted: the writer session's log of logs signed this log at "
                    f"size {a.size}, the store's newest checkpoint of it is at size {newest}"))
            elif signed is not None:
                result.warnings.append(Finding(CHECKPOINT, log_id, a.size, None,
                                               "the exported checkpoint is newer than any "
                                               "checkpoint in the store"))
        if fast:
            anchored_size = max([newest, *(a.size for a in anchored)])
            if st.n > anchored_size:
                self._unanchored(log_id, anchored_size, st.n - anchored_size,
                                 st.oldest_unsigned, strict, result)
            return
        before = len(result.findings)
        diagnosis = _Diagnosis(self, log_id, cps, anchored, strict, result, st.oldest_unsigned)
        diagnosis.run()
        explained = diagnosis.accounted
        if len(result.findings) == before and not explained:  # keep the failure visible
            result.findings.append(Finding(CHECKPOINT, log_id, None, None,
                                           "log does not match its signed checkpoints"))

    def _unanchored(self, log_id: str, start: int, count: int, oldest: float, strict: bool,
                    result: VerifyResult, gaps: int = 0) -> None:
        """Records no signature covers: a warning while the oldest of them is younger than
        ``unsigned_grace`` (a writer may still sign them), a finding after that."""
        age = self.clock.now().timestamp() - oldest
        late = age > self.unsigned_grace
        detail = (f"{count} record(s) from position {start} are not covered by a signed "
                  "checkpoint" + (f"; {gaps} position(s) among them are empty" if gaps else ""))
        if late:
            detail += (f", the oldest arrived {age:,.0f}s ago (a writer signs within "
                       f"{self.unsigned_grace:,.0f}s): its checkpoints were deleted, or its "
                       "writer stopped before signing")
        finding = Finding(UNANCHORED, log_id, start, None, detail)
        (result.findings if strict or late else result.warnings).append(finding)


def _is_head(cp: notes.Checkpoint) -> bool:
    return cp.extensions == ("head",)


RecordId = str | bytes  # text from a row, or the 16 raw bytes a checkpoint recorded


class _Times:
    """Expiry and event times by position, read from checkpoint rows only when asked (a
    diagnosis needs them for missing rows only, not for every record of the log)."""

    def __init__(self) -> None:
        self._ranges: dict[int, tuple[bytes, bytes]] = {}  # first position -> blobs
        self._starts: list[int] = []

    def add(self, first: int, expires: bytes, events: bytes) -> None:
        self._ranges[first] = (expires, events)
        bisect.insort(self._starts, first)

    def get(self, position: int, default: tuple[int, int] = (0, 0)) -> tuple[int, int]:
        k = bisect.bisect_right(self._starts, position) - 1
        if k < 0:
            return default
        first = self._starts[k]
        expires, events = self._ranges[first]
        at = (position - first) * 8
        if at + 8 > len(expires):
            return default
        event = (int.from_bytes(events[at:at + 8], "big", signed=True)
                 if at + 8 <= len(events) else 0)
        return int.from_bytes(expires[at:at + 8], "big"), event

    def __contains__(self, position: object) -> bool:
        return isinstance(position, int) and self.get(position, (-1, 0))[0] >= 0

    def __getitem__(self, position: int) -> tuple[int, int]:
        return self.get(position)


def _netstrings(blob: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(blob):
        colon = blob.index(b":", at)
        n = int(blob[at:colon])
        out.append(blob[colon + 1:colon + 1 + n])
        at = colon + 2 + n
    return out


def _entries(blob: bytes) -> list[tuple[str, int, bytes]]:
    """The entries of a log of logs' checkpoint: (log id, size, root) per signed checkpoint."""
    out = []
    for entry in _netstrings(blob):
        log_id, size, root = _netstrings(entry)
        out.append((log_id.decode(), int(size), root))
    return out


def _id_text(value: RecordId) -> str:
    return str(uuid.UUID(bytes=value)) if isinstance(value, bytes) else value


@dataclass
class _Row:
    position: int
    record_id: str
    stored: bytes
    recomputed: bytes


class _Diagnosis:
    """The slow path for one log: name each record that differs from what was signed."""

    def __init__(self, verifier: Verifier, log_id: str, cps: list[_Cp],
                 anchored: list[notes.Checkpoint], strict: bool, result: VerifyResult,
                 oldest_unsigned: float = 0.0) -> None:
        self.v, self.log_id, self.cps, self.strict, self.result = (
            verifier, log_id, cps, strict, result)
        self.anchored = anchored
        self.oldest_unsigned = oldest_unsigned
        # position -> (when retention may drop it, event time in us), signed data only
        self.expires = _Times()
        self.legacy_expires = _Times()  # unsigned (checkpoints from before migration 010)
        self.unverifiable_to = 0  # positions before it were named by _name_unverifiable
        self.held: set[int] = set()  # expired positions a legal hold accounts for
        self.accounted = False  # signed rows are missing, and retention explains them

    def find(self, kind: str, position: int | None, record_id: str | None, detail: str) -> None:
        self.result.findings.append(Finding(kind, self.log_id, position, record_id, detail))

    def run(self) -> None:
        rows = self._rows()
        by_pos: dict[int, list[_Row]] = defaultdict(list)
        for row in rows:
            by_pos[row.position].append(row)
        auth, ids = self._authenticated(by_pos)
        self._compare(auth, ids, by_pos)

    def _rows(self) -> list[_Row]:
        return [_Row(int(p), str(i), bytes.fromhex(s), bytes.fromhex(r))
                for p, i, s, r in self.v.store.rows(
                    compose("SELECT log_index, toString(<id>), hex(leaf_hash), hex(<leaf>) "
                            "FROM <table> WHERE log_id = {log:String}", leaf=self.v._leaf_sql,
                            id=f"`{self.v.schema.id_column}`", table=self.v.schema.table),
                    {"log": self.log_id})]

    def _authenticated(self, by_pos: dict[int, list[_Row]], details: bool = True
                       ) -> tuple[list[bytes], list[RecordId]]:
        """The leaves every valid checkpoint signed, position by position. ``details``:
        also the record ids and expiry times stored with them (ids empty without). Ids stay
        16 raw bytes until a finding names one (``_id_text``): most are never needed."""
        valid = {cp.size: cp.root for cp in self.cps}
        meta = {cp.size: cp.meta for cp in self.cps}
        times = {cp.size: cp.times for cp in self.cps}
        auth: list[bytes] = []
        ids: list[RecordId] = []
        compact: list[bytes] = []
        pending: list[bytes] = []
        pending_ids: list[RecordId] = []
        for size, prev, leaves_hex, ids_hex, exp_hex, ev_hex in self.v.store.rows(compose(
                "SELECT tree_size, prev_size, hex(leaf_hashes), <details> "
                "FROM ledger_checkpoints WHERE log_id = {log:String} ORDER BY tree_size",
                details="hex(record_ids), hex(record_expires), hex(record_events)"
                if details else "'', '', ''"), {"log": self.log_id}):
            size, prev = int(size), int(prev)
            blob = bytes.fromhex(leaves_hex)
            leaves = [blob[i:i + 32] for i in range(0, len(blob), 32)]
            signed_meta = meta.get(size)  # ids and expiry are used only when signed
            id_blob = bytes.fromhex(ids_hex) if signed_meta else b""
            signed_times = times.get(size)
            rec_ids: list[RecordId] = [id_blob[i:i + 16] if id_blob else ""
                                       for i in range(0, max(len(id_blob), 16 * len(leaves))
                                                      - 15, 16)]
            start = len(auth) + len(pending)
            exp_blob, ev_blob = bytes.fromhex(exp_hex), bytes.fromhex(ev_hex)
            target = self.expires if signed_times else (
                self.legacy_expires if signed_times is None and size in valid else None)
            if target is not None:
                target.add(prev, exp_blob, ev_blob)
            if prev != start or len(leaves) != size - prev:
                self.find(CHECKPOINT, size, None, f"checkpoint at size {size}: its list of "
                          "appended leaves was altered (does not chain)")
                leaves = [b""] * max(0, size - start)
                rec_ids = [""] * len(leaves)
            pending += leaves[: size - start]
            pending_ids += rec_ids[: size - start]
            if size not in valid:
                continue
            ext = merkle.Extension(len(auth), compact, pending)
            if ext.mth(0, size) != valid[size]:
                rebuilt = self._from_rows(len(auth), size, by_pos)
                ext = merkle.Extension(len(auth), compact, rebuilt or [])
                if rebuilt is None or ext.mth(0, size) != valid[size]:
                    self.find(CHECKPOINT, len(auth), None,
                              f"positions {len(auth)}..{size - 1} do not match the checkpoint "
                              f"signed at size {size}, and its list of appended leaves was "
                              "altered too: records in that range cannot be named one by one")
                    return auth, ids
                self.find(CHECKPOINT, size, None, f"checkpoint at size {size}: its list of "
                          "appended leaves was altered (the records themselves match)")
                pending = rebuilt
                pending_ids = [by_pos[p][0].record_id for p in range(len(auth), size)]
            auth += pending
            ids += pending_ids
            compact = ext.compact_range()
            pending, pending_ids = [], []
        for a in self.anchored:
            if a.size <= len(auth):  # inside the store's signed history: must agree with it
                if merkle.root_of(auth[:a.size]) != a.root:
                    self.find(CHECKPOINT, a.size, None, f"the store's signed history differs "
                              f"from the exported checkpoint at size {a.size}: the log was "
                              "rewritten and re-signed (signing key misused?)")
                continue
            if a.size > len(auth):  # beyond the store's newest checkpoint
                rebuilt = self._from_rows(len(auth), a.size, by_pos)
                ext = merkle.Extension(len(auth), compact, rebuilt or [])
                if rebuilt is not None and ext.mth(0, a.size) == a.root:
                    auth += rebuilt
                    ids += [by_pos[p][0].record_id for p in range(len(ids), a.size)]
                    compact = ext.compact_range()
                else:
                    start = len(auth)
                    missing = [p for p in range(start, a.size) if p not in by_pos]
                    present = a.size - start - len(missing)
                    cut = bool(missing) and missing == list(range(missing[0], a.size)) and (
                        not any(p >= missing[0] for p in by_pos))
                    what = ("the root the log of logs signed" if _is_head(a)
                            else "the exported checkpoint")
                    self.find(TRUNCATED if cut else MODIFIED, start, None,
                              f"positions {start}..{a.size - 1} ({a.size - start} records, "
                              f"{present} still present) do not match {what} "
                              f"at size {a.size}, and the store no longer holds the checkpoints"
                              " that would name them one by one")
                    self._name_unverifiable(start, a.size, by_pos)
                    break
        return auth, ids

    def _name_unverifiable(self, start: int, end: int, by_pos: dict[int, list[_Row]]) -> None:
        """Each record of a range whose signed leaves are gone while a signed root shows
        the range changed: any of them may be the changed one."""
        self.unverifiable_to = end
        named = 0
        for p in range(start, end):
            for r in by_pos.get(p, []):
                if named == MAX_NAMED:
                    self.find(UNANCHORED, p, None, f"... and the other records up to position "
                              f"{end - 1}")
                    return
                named += 1
                self.find(UNANCHORED, p, r.record_id, "its checkpoint was deleted and its range "
                          "no longer matches the signed root: this record may have been "
                          "changed (id as stored: no surviving signature covers it)")

    @staticmethod
    def _from_rows(start: int, end: int, by_pos: dict[int, list[_Row]]) -> list[bytes] | None:
        out = []
        for p in range(start, end):
            rows = by_pos.get(p, [])
            if len(rows) != 1:
                return None
            out.append(rows[0].recomputed)
        return out

    def _compare(self, auth: list[bytes], ids: list[RecordId],
                 by_pos: dict[int, list[_Row]]) -> None:
        signed_at = {leaf: p for p, leaf in enumerate(auth)}
        missing = []
        for p, expected in enumerate(auth):
            rows = by_pos.get(p, [])
            if not rows:
                missing.append(p)
                continue
            good = next((r for r in rows if r.recomputed == expected), None)
            for r in rows:
                if r is good:
                    continue
                self._bad_row(r, good, expected, ids, signed_at)
        self._missing(missing, auth, ids, by_pos)
        self._tail(max(len(auth), self.unverifiable_to), by_pos)

    def _bad_row(self, r: _Row, good: _Row | None, expected: bytes, ids: list[RecordId],
                 signed_at: dict[bytes, int]) -> None:
        """Names a bad row by the id signed for it wherever one is known (its position's,
        or the position its leaf was signed at); the row's own id is shown as what it
        now carries."""
        p = r.position
        signed_id = _id_text(ids[p]) if p < len(ids) and ids[p] else ""
        if r.recomputed == expected:
            self.find(INSERTED, p, r.record_id, "a second copy of the signed record")
        elif good is not None:
            self.find(INSERTED, p, r.record_id,
                      f"forged: position {p} already holds signed record {good.record_id}")
        elif r.stored in signed_at and signed_at[r.stored] != p:
            q = signed_at[r.stored]
            moved_id = _id_text(ids[q]) if q < len(ids) and ids[q] else r.record_id
            self.find(REORDERED, p, moved_id, f"signed at position {q}, found at {p}")
        elif signed_id and signed_id != r.record_id:
            self.find(MODIFIED, p, signed_id,
                      f"replaced: position {p} was signed for this record; it now holds a "
                      f"row with id {r.record_id}")
        else:
            self.find(MODIFIED, p, signed_id or r.record_id,
                      "stored columns differ from the signed record"
                      + ("" if r.stored == r.recomputed else
                         " (its stored leaf hash no longer matches them either)")
                      + ("" if signed_id else " (id as stored: its checkpoint's signed "
                         "record list is unavailable)"))

    def _missing(self, missing: list[int], auth: list[bytes], ids: list[RecordId],
                 by_pos: dict[int, list[_Row]]) -> None:
        """Signed positions without a row. Gone after the expiry their checkpoint signed:
        retention (a warning), unless a legal hold still covers them and its copy is gone
        or differs. Gone before it, or with no signed expiry: deleted or truncated."""
        size = len(auth)
        now = self.v.clock.now().timestamp()
        expired = [p for p in missing if 0 < self.expires.get(p, (0, 0))[0] <= now]
        if expired:  # dropped by the table's retention TTL: expected, unless held
            expired = self._holds(expired, auth, ids)
        if expired:
            self.result.warnings.append(Finding(
                EXPIRED, self.log_id, expired[0], None,
                f"{len(expired)} signed record(s) past their signed expiry were dropped by the "
                "table's retention TTL (expected; archive manifests account for them)"))
        legacy = [p for p in missing if p not in self.expires
                  and 0 < self.legacy_expires.get(p, (0, 0))[0] <= now]
        if legacy:
            (self.result.findings if self.strict else self.result.warnings).append(Finding(
                LEGACY, self.log_id, legacy[0], None,
                f"{len(legacy)} record(s) missing after the expiry their checkpoint lists, "
                "unsigned (checkpoints written before expiry was signed): not tamper-evident"))
        gone = set(expired) | set(legacy) | self.held
        self.accounted = bool(gone)
        missing = [p for p in missing if p not in gone]
        if not missing:
            return
        last_row = max(by_pos) if by_pos else -1
        suffix_from = missing[-1] + 1
        for p in reversed(missing):
            if p == suffix_from - 1 and p > last_row:
                suffix_from = p
            else:
                break
        truncated = suffix_from < size and missing[-1] == size - 1 and suffix_from > last_row
        for p in missing:
            rid = _id_text(ids[p]) if p < len(ids) and ids[p] else None
            exp = self.expires.get(p, (0, 0))[0]
            why = (f"; its signed expiry {datetime.fromtimestamp(exp, UTC):%Y-%m-%d %H:%M:%S} "
                   "UTC has not passed" if exp > now else "")
            if truncated and p >= suffix_from:
                self.find(TRUNCATED, p, rid, f"log truncated: positions {suffix_from}..{size - 1}"
                          f" were signed and are gone{why}")
            else:
                self.find(DELETED, p, rid, f"signed record is missing{why}")

    def _holds(self, expired: list[int], auth: list[bytes], ids: list[RecordId]) -> list[int]:
        """Of the expired positions, those no active legal hold accounts for. A held copy
        must reproduce the signed leaf; a record a tenant-wide hold covers (by the signed
        event time) whose copy is gone is a finding."""
        if self.v.schema.table != holds.SOURCE:
            return expired
        copies: dict[int, list[bytes]] = defaultdict(list)
        try:
            for p, leaf_hex in self.v.store.rows(compose(
                    "SELECT log_index, hex(<leaf>) FROM <held> WHERE log_id = {log:String} "
                    "AND log_index IN {ps:Array(UInt64)}", leaf=self.v._leaf_sql,
                    held=holds.HELD), {"log": self.log_id, "ps": expired}):
                copies[int(p)].append(bytes.fromhex(leaf_hex))
        except StoreError:  # no hold ever copied a row with today's columns: no copies
            pass
        tenant = unquote(self.log_id.split("/")[1])
        active = holds.list_holds(self.v.store, tenant)
        rest = []
        for p in expired:
            rid = _id_text(ids[p]) if p < len(ids) and ids[p] else None
            if copies.get(p):
                self.held.add(p)
                if auth[p] not in copies[p]:
                    self.find(MODIFIED, p, rid, "expired from the table; its legal-hold copy "
                              "differs from the signed record")
                continue
            expires, event = self.expires[p]
            covering = [h for h in active if h.placed_at.timestamp() < expires
                        and (h.from_ts is None or h.from_ts.timestamp() * 1e6 <= event)
                        and (h.to_ts is None or event < h.to_ts.timestamp() * 1e6)]
            if any(not h.user_key for h in covering):
                self.held.add(p)
                hold = next(h for h in covering if not h.user_key)
                self.find(DELETED, p, rid, f"under legal hold {hold.hold_id} (placed "
                          f"{hold.placed_at:%Y-%m-%d %H:%M} UTC) and gone: expired from the "
                          "table, and the hold's copy is missing")
            elif covering:
                self.held.add(p)
                self.result.warnings.append(Finding(
                    EXPIRED, self.log_id, p, rid,
                    f"expired while user-scoped legal hold {covering[0].hold_id} was active and "
                    "no copy is held: whether the hold covered it cannot be decided from signed "
                    "data (the ledger signs no user key)"))
            else:
                rest.append(p)
        return rest

    def _tail(self, size: int, by_pos: dict[int, list[_Row]]) -> None:
        tail = sorted(p for p in by_pos if p >= size)
        count = 0
        for p in tail:
            rows = by_pos[p]
            for r in rows[1:]:
                self.find(INSERTED, p, r.record_id, f"duplicate position {p} after the last "
                          "checkpoint")
            if rows[0].stored != rows[0].recomputed:
                self.find(MODIFIED, p, rows[0].record_id, "after the last checkpoint: stored "
                          "columns no longer match the row's own leaf hash")
            count += 1
        if count:
            gaps = (tail[-1] - size + 1) - len(tail)
            self.v._unanchored(self.log_id, size, count, self.oldest_unsigned, self.strict,
                               self.result, gaps)


_WARNS = {UNANCHORED: "records not yet signed", EXPIRED: "records dropped by retention",
          LEGACY: "records written before the ledger covered their table",
          CHECKPOINT: "exported checkpoint newer than the store"}


def report_verifier(public_key: Ed25519PublicKey,
                    key_name: str = notes.KEY_NAME) -> Callable[[Store, Scope], VerifyOutcome]:
    """``verify`` as the auditor report's integrity check (``build_report(verifier=...)``)."""

    def check(store: Store, scope: Scope) -> VerifyOutcome:
        result = Verifier(store, public_key, key_name).run(
            tenant=scope.tenant, since=scope.period.start, until=scope.period.end)
        where = f" for tenant {scope.tenant}" if scope.tenant else ""
        return VerifyOutcome(
            intact=result.ok,
            checkpoint=f"{result.checkpoints} signed checkpoints over {result.logs} logs"
                       f"{where}, key {notes.verifier_key(public_key, key_name)}",
            summary=(f"{result.records} records in {result.logs} logs verified against "
                     f"{result.checkpoints} signed checkpoints ("
                     + ", ".join(f"{t} {n.records}" for t, n in result.tables.items())
                     + "): " + ("intact" if result.ok else f"{len(result.findings)} problems")
                     + (f"; {len(result.warnings)} warnings ("
                        + ", ".join(sorted({_WARNS.get(w.kind, w.kind)
                                            for w in result.warnings})) + ")"
                        if result.warnings else "")),
            problems=[(f.record_id or "-", "-" if f.position is None else str(f.position),
                       f"{f.kind} ({f.table}): {f.detail}") for f in result.findings])

    return check
