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
positions can be checked. They are warnings (a writer may still be about to sign them);
``strict`` turns them into findings.

Rows outside every log (``log_id = ''``: written around the ledger) are findings, except in
a table that came under the ledger later (``LeafSchema.since_migration``): there the rows
dated between the store's creation and that migration predate the ledger and are warnings
(``legacy``; findings under ``strict``).

``--from``/``--to`` select the logs with a row in the period by each table's own time column
(``LeafSchema.time_column``: event_timestamp, erased_at, accessed_at); each selected log is
verified whole.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.clickhouse.ledger import merkle
from genai_audit.clickhouse.ledger.leaf import (
    INTERACTIONS,
    SCHEMAS,
    LeafSchema,
    compose,
    sql_leaf_hash,
)
from genai_audit.clickhouse.ledger.log import origin_for
from genai_audit.clickhouse.reports.integrity import VerifyOutcome
from genai_audit.clickhouse.reports.scope import Scope
from genai_audit.clickhouse.store import Store, period_conditions

MODIFIED, DELETED, INSERTED, REORDERED, TRUNCATED = (
    "modified", "deleted", "inserted", "reordered", "truncated")
CHECKPOINT, UNANCHORED, EXPIRED, LEGACY = "checkpoint", "unanchored", "expired", "legacy"
CHUNK_RECORDS = 2_000_000
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


@dataclass
class _LogStats:
    n: int = 0
    lo: int = 0
    hi: int = -1
    uniq: int = 0
    bad: int = 0
    roots: dict[int, bytes] = field(default_factory=dict)


class Verifier:
    def __init__(self, store: Store, public_key: Ed25519PublicKey,
                 key_name: str = notes.KEY_NAME,
                 schemas: Sequence[LeafSchema] = tuple(SCHEMAS.values()),
                 progress: Callable[[int], None] | None = None,
                 chunk_records: int = CHUNK_RECORDS) -> None:
        self.store, self.public_key, self.key_name = store, public_key, key_name
        self.schemas = tuple(schemas)
        self.progress = progress or (lambda _n: None)
        self.chunk_records = chunk_records
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
        counts = self._select_logs(tenant, since, until, anchors, strict, result)
        cps = self._checkpoints(list(counts), result)
        anchored = self._anchors(anchors, counts, result)
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
            "SELECT log_id, tree_size, hex(root_hash), prev_size, "
            "arrayMap(x -> hex(x), consistency_proof), note FROM ledger_checkpoints "
            "WHERE log_id IN {logs:Array(String)} ORDER BY log_id, tree_size",
            {"logs": logs})
        for log_id, size, root_hex, prev_size, proof_hex, note in rows:
            result.checkpoints += 1
            cp = self._check_note(str(log_id), str(note), int(size), bytes.fromhex(root_hex),
                                  result)
            if cp is None:
                continue
            current = _Cp(cp.size, cp.root, int(prev_size),
                          tuple(bytes.fromhex(h) for h in proof_hex))
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
            "SELECT tuple(log_id, n, lo, hi, uniq, bad, size) AS st,"
            " arraySlice(leaves, 1, size) AS l0 FROM ("
            " SELECT log_id, count() AS n, min(log_index) AS lo, max(log_index) AS hi,"
            " uniqExact(log_index) AS uniq, countIf(r != leaf_hash) AS bad,"
            " arraySort((h, i) -> i, groupArray(r), groupArray(log_index)) AS leaves"
            " FROM (SELECT log_id, log_index, leaf_hash, <leaf> AS r"
            " FROM <table> WHERE log_id IN {logs:Array(String)})"
            " GROUP BY log_id"
            ") ARRAY JOIN {sizes:Array(Array(UInt64))}[indexOf({logs:Array(String)}, log_id)]"
            " AS size", leaf=self._leaf_sql, table=self.schema.table)
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
                sql, {"logs": logs, "sizes": [sizes[log_id] for log_id in logs]}):
            log_id, n, lo, hi, uniq, bad, size = st
            stats = out.setdefault(str(log_id), _LogStats(int(n), int(lo), int(hi), int(uniq),
                                                          int(bad)))
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
        for a in anchored:
            fast = fast and st.roots.get(a.size) == a.root
            if signed is not None and a.size > signed.size:
                result.warnings.append(Finding(CHECKPOINT, log_id, a.size, None,
                                               "the exported checkpoint is newer than any "
                                               "checkpoint in the store"))
        if fast:
            anchored_size = max([signed.size if signed else 0, *(a.size for a in anchored)])
            if st.n > anchored_size:
                self._unanchored(log_id, anchored_size, st.n - anchored_size, strict, result)
            return
        before = len(result.findings)
        _Diagnosis(self, log_id, cps, anchored, strict, result).run()
        if len(result.findings) == before:  # never expected: keep the failure visible
            result.findings.append(Finding(CHECKPOINT, log_id, None, None,
                                           "log does not match its signed checkpoints"))

    @staticmethod
    def _unanchored(log_id: str, start: int, count: int, strict: bool,
                    result: VerifyResult) -> None:
        finding = Finding(UNANCHORED, log_id, start, None,
                          f"{count} record(s) from position {start} are not yet covered by a "
                          "signed checkpoint")
        (result.findings if strict else result.warnings).append(finding)


RecordId = str | bytes  # text from a row, or the 16 raw bytes a checkpoint recorded


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
                 anchored: list[notes.Checkpoint], strict: bool, result: VerifyResult) -> None:
        self.v, self.log_id, self.cps, self.strict, self.result = (
            verifier, log_id, cps, strict, result)
        self.anchored = anchored
        self.expires: dict[int, int] = {}  # position -> when retention may drop it

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
        auth: list[bytes] = []
        ids: list[RecordId] = []
        compact: list[bytes] = []
        pending: list[bytes] = []
        pending_ids: list[RecordId] = []
        for size, prev, leaves_hex, ids_hex, exp_hex in self.v.store.rows(compose(
                "SELECT tree_size, prev_size, hex(leaf_hashes), <details> "
                "FROM ledger_checkpoints WHERE log_id = {log:String} ORDER BY tree_size",
                details="hex(record_ids), hex(record_expires)" if details else "'', ''"),
                {"log": self.log_id}):
            size, prev = int(size), int(prev)
            blob = bytes.fromhex(leaves_hex)
            leaves = [blob[i:i + 32] for i in range(0, len(blob), 32)]
            id_blob = bytes.fromhex(ids_hex)
            rec_ids: list[RecordId] = [id_blob[i:i + 16]
                                       for i in range(0, len(id_blob) - 15, 16)]
            start = len(auth) + len(pending)
            exp_blob = bytes.fromhex(exp_hex)
            for i in range(0, len(exp_blob) - 7, 8):
                self.expires[prev + i // 8] = int.from_bytes(exp_blob[i:i + 8], "big")
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
                    self.find(TRUNCATED if cut else MODIFIED, start, None,
                              f"positions {start}..{a.size - 1} ({a.size - start} records, "
                              f"{present} still present) do not match the exported checkpoint "
                              f"at size {a.size}, and the store no longer holds the checkpoints"
                              " that would name them one by one")
        return auth, ids

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
                self._bad_row(r, good, expected, _id_text(ids[p]) if p < len(ids) else "",
                              signed_at)
        self._missing(missing, len(auth), ids, by_pos)
        self._tail(len(auth), by_pos)

    def _bad_row(self, r: _Row, good: _Row | None, expected: bytes, signed_id: str,
                 signed_at: dict[bytes, int]) -> None:
        p = r.position
        if r.recomputed == expected:
            self.find(INSERTED, p, r.record_id, "a second copy of the signed record")
        elif good is not None:
            self.find(INSERTED, p, r.record_id,
                      f"forged: position {p} already holds signed record {good.record_id}")
        elif r.stored in signed_at and signed_at[r.stored] != p:
            self.find(REORDERED, p, r.record_id,
                      f"signed at position {signed_at[r.stored]}, found at {p}")
        elif signed_id and signed_id != r.record_id:
            self.find(MODIFIED, p, r.record_id,
                      f"replaced: position {p} was signed for record {signed_id}")
        else:
            self.find(MODIFIED, p, r.record_id, "stored columns differ from the signed record"
                      + ("" if r.stored == r.recomputed else
                         " (its stored leaf hash no longer matches them either)"))

    def _missing(self, missing: list[int], size: int, ids: list[RecordId],
                 by_pos: dict[int, list[_Row]]) -> None:
        now = time.time()
        expired = [p for p in missing if 0 < self.expires.get(p, 0) <= now]
        if expired:  # dropped by the table's retention TTL: expected, not tampering
            self.result.warnings.append(Finding(
                EXPIRED, self.log_id, expired[0], None,
                f"{len(expired)} signed record(s) past their retention were dropped by the "
                "table's TTL (expected; archive manifests account for them)"))
            gone = set(expired)
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
            if truncated and p >= suffix_from:
                self.find(TRUNCATED, p, rid, f"log truncated: positions {suffix_from}..{size - 1}"
                          " were signed and are gone")
            else:
                self.find(DELETED, p, rid, "signed record is missing")

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
            detail = f"{count} record(s) from position {size} are not yet covered by a signed " \
                     "checkpoint" + (f"; {gaps} position(s) among them are empty" if gaps else "")
            finding = Finding(UNANCHORED, self.log_id, size, None, detail)
            (self.result.findings if self.strict else self.result.warnings).append(finding)



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
