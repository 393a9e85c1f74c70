"""Ledgered appends for commands that write a few rows and exit (erase, show, report).

The exporter keeps one ``Ledger`` for its whole life and checkpoints every N records or T
seconds. A command such as ``genai-audit erase`` writes one row and exits a moment later,
so it cannot wait for a timer: ``ledger_session`` opens a writer session (its own log per
tenant, like any writer) that signs a checkpoint at every commit, and on leaving checks
that every row it appended is covered by a signed checkpoint, or raises. A long-lived
process (the gateway) passes its own ``Ledger`` instead, which is used as is and left open.

``append`` is the one insert path for these rows: positions and leaf hashes from the
ledger, the insert with the batch's deduplication token, ``committed`` (or ``failed``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.ledger.leaf import LeafSchema
from genai_audit.clickhouse.ledger.log import Ledger, PreparedBatch
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import KeyStore


class CheckpointNotSigned(StoreError):
    """Rows were written but no signed checkpoint covers them (verify warns about them)."""

    code = "checkpoint_not_signed"


def append(store: Store, ledger: Ledger, rows: Sequence[Sequence[Any]]) -> PreparedBatch:
    """Insert ``rows`` (in the ledger's ``row_columns`` order) at their ledger positions."""
    batch = ledger.prepare(rows)
    try:
        batch.insert_into(store)
    except BaseException:
        ledger.failed(batch)
        raise
    ledger.committed(batch)
    return batch


def current_user(store: Store) -> str:
    """The store account this connection is authenticated as (what ``db_user`` records)."""
    return str(store.scalar("SELECT currentUser()"))


@contextmanager
def ledger_session(store: Store, keys: KeyStore, schema: LeafSchema,
                   row_columns: Sequence[str], ledger: Ledger | None = None) -> Iterator[Ledger]:
    """``ledger`` if given (left open), else a one-command session signed before it ends."""
    if ledger is not None:
        if ledger.schema.table != schema.table:
            raise ValueError(f"a ledger for {ledger.schema.table} cannot write {schema.table}")
        yield ledger
        return
    own = Ledger(store, keys.signing_key(), schema=schema, row_columns=row_columns,
                 checkpoint_records=1, checkpoint_seconds=0)
    try:
        yield own
    finally:
        own.close()
    if own.unsigned():
        own.flush()  # a transient store error: one more try before giving up
    if own.unsigned():
        raise CheckpointNotSigned(
            f"{own.unsigned()} {schema.table} row(s) were written but no checkpoint could be "
            "signed for them; `genai-audit verify` reports them as unanchored")
