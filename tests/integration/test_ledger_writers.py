"""Writers: concurrent writer processes and threads, the exporter's checkpoints, failures.

chDB lets one process own a data directory, so "two writer processes into one store" is
run the way gateway replicas would run against a ClickHouse server, minus the network: each
replica is a real separate process with its own writer session (its own Ledger and logs),
and hands each insert (rows, then checkpoints) over a pipe to the process that owns the
store, which inserts them as they arrive, interleaved. Every ledger decision (positions,
leaf hashes, roots, consistency proofs, signatures) is made in the writer processes.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.connection import Connection, wait
from typing import Any

import pytest
from ledger_helpers import ledgered_writer, make_record

from genai_audit.clickhouse.ledger import verify as v
from genai_audit.clickhouse.ledger.log import PreparedBatch
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore

pytestmark = pytest.mark.integration


class ForwardingStore:
    """A writer process's view of the store: inserts travel to the owner and back."""

    def __init__(self, conn: Connection, database: str) -> None:
        self.conn, self.database = conn, database

    def insert(self, table: str, rows: Any, column_names: Any, settings: Any = None) -> None:
        self.conn.send((table, rows, list(column_names), settings))
        error = self.conn.recv()
        if error:
            raise RuntimeError(error)


def replica(conn: Connection, database: str, keys_dir: str, name: str, n: int) -> None:
    writer = ledgered_writer(ForwardingStore(conn, database), LocalKeyStore(keys_dir),  # type: ignore[arg-type]
                             checkpoint_records=25, checkpoint_seconds=3600)
    for start in range(0, n, 7):
        writer.write([make_record(i, tenant_id=("acme", "globex")[i % 2],
                                  request_id=f"{name}-{i}")
                      for i in range(start, min(n, start + 7))])
    assert writer.ledger is not None
    writer.ledger.close()
    conn.send(None)


def test_two_writer_processes_into_one_store_verify_clean(store: Store,
                                                          keystore: LocalKeyStore) -> None:
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for name in ("replica-a", "replica-b"):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=replica, args=(theirs, store.database,
                                                 str(keystore.directory), name, 120))
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    open_pipes, inserts = list(pipes), 0
    while open_pipes:
        for conn in wait(open_pipes, timeout=120):
            message = conn.recv()  # type: ignore[union-attr]
            if message is None:
                open_pipes.remove(conn)
                continue
            table, rows, columns, settings = message
            try:
                store.insert(table, rows, columns, settings)
                conn.send(None)  # type: ignore[union-attr]
            except Exception as exc:
                conn.send(str(exc))  # type: ignore[union-attr]
            inserts += 1
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    result = v.Verifier(store, keystore.signing_key().public_key()).run(strict=True)
    assert result.ok and not result.warnings, result.findings
    assert (result.records, result.logs) == (240, 4)  # 2 tenants x 2 writer sessions
    writers = store.rows("SELECT splitByChar('/', log_id)[3] AS w, count() FROM interactions "
                         "GROUP BY w")
    assert sorted(n for _, n in writers) == [120, 120]


def test_threads_sharing_one_writer_session(store: Store, keystore: LocalKeyStore) -> None:
    writer = ledgered_writer(store, keystore, checkpoint_records=10, checkpoint_seconds=3600)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for b in range(6):
                writer.write([make_record(i, tenant_id="acme") for i in range(5)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert writer.ledger is not None
    writer.ledger.close()
    positions = [p for (p,) in store.rows("SELECT log_index FROM interactions ORDER BY 1")]
    assert positions == list(range(120))
    result = v.Verifier(store, keystore.signing_key().public_key()).run(strict=True)
    assert result.ok and result.records == 120


def test_a_failed_batch_seals_its_log_and_the_next_batch_opens_a_new_one(
        store: Store, keystore: LocalKeyStore) -> None:
    writer = ledgered_writer(store, keystore, checkpoint_records=1000, checkpoint_seconds=3600)
    writer.write([make_record(i) for i in range(5)])
    lost = writer.prepare([make_record(i) for i in range(5, 8)])
    writer.failed(lost)  # given up (a spool may replay it later)
    writer.write([make_record(i) for i in range(8, 12)])
    assert writer.ledger is not None
    writer.ledger.close()
    logs = dict(store.rows("SELECT log_id, count() FROM interactions GROUP BY log_id"))
    assert sorted(logs.values()) == [4, 5] and len(logs) == 2
    assert v.Verifier(store, keystore.signing_key().public_key()).run(strict=True).ok
    # the spool replays the very same batch later: it fills the hole, still byte-identical
    writer.insert(lost)
    writer.insert(lost)  # a second replay is dropped by the deduplication token
    assert store.scalar("SELECT count() FROM interactions") == 12
    result = v.Verifier(store, keystore.signing_key().public_key()).run()
    assert result.ok and [(w.kind, w.position) for w in result.warnings] == [("unanchored", 5)]


def test_batch_is_prepared_once_and_retried_unchanged(store: Store,
                                                      keystore: LocalKeyStore) -> None:
    writer = ledgered_writer(store, keystore)
    records = [make_record(i) for i in range(3)]
    batch: PreparedBatch = writer.prepare(records)
    writer.insert(batch)
    writer.insert(batch)  # the "did it land?" retry
    writer.committed(batch)
    assert store.scalar("SELECT count() FROM interactions") == 3
    again = writer.prepare(records)  # the same spans exported again in this process
    assert again.rows == [] and again.entries == ()


def test_exporter_puts_every_span_in_the_ledger_and_signs_on_flush(
        store: Store, keystore: LocalKeyStore, make_span: Any) -> None:
    from genai_audit.config import Settings
    from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
    from genai_audit.processor.factory import default_pipeline

    settings = Settings.load({"ledger_checkpoint_records": 4}, env={})
    exporter = ClickHouseSpanExporter(settings, store=store, keys=keystore,
                                      pipeline=default_pipeline(settings, keystore))
    for _ in range(3):
        exporter.export([make_span(**{"tenant.id": t}) for t in ("acme", "globex", "acme")])
    verifier = v.Verifier(store, keystore.signing_key().public_key())
    before = verifier.run()
    assert before.ok and before.checkpoints == 1  # acme reached 4 records: signed at once
    # acme's last 2 and globex's 3 records are not due yet: written, not yet signed
    assert sorted((w.kind, w.position) for w in before.warnings) == [
        ("unanchored", 0), ("unanchored", 4)]
    assert exporter.force_flush()
    after = verifier.run(strict=True)
    assert after.ok and after.records == 9 and not after.warnings
    exporter.export([make_span()])
    exporter.shutdown()  # the final checkpoint
    assert verifier.run(strict=True).ok
