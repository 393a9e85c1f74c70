"""Test helper: real spans -> the real pipeline -> the real writer, with backdated times."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.policies import StorePolicies
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter
from genai_audit.config import Settings
from genai_audit.keystore import KeyStore
from genai_audit.processor.factory import default_pipeline, default_policy

# Credentials of the test S3 server (moto accepts any): tests check they never leak.
KEY_ID, SECRET = "AKIATESTARCHIVE", "s3cr3t-never-printed"


def write_records(store: Store, keystore: KeyStore, make_span: Callable[..., object],
                  at: datetime | Sequence[datetime], count: int = 1, *, ledger: bool = False,
                  **span_attrs: object) -> list[str]:
    """Write records stamped at ``at`` (``count`` of them, or one per time given) in ONE
    insert (so one part), with the store's tenant policies; return their ids. ``ledger``:
    through the ledger, as the exporter writes (a log of their own, signed when done);
    otherwise around it."""
    times = [at] * count if isinstance(at, datetime) else list(at)
    settings = Settings.load({}, env={})
    pipeline = default_pipeline(settings, keystore,
                                StorePolicies(store, default_policy(settings), refresh_s=0))
    spans = [make_span(**span_attrs) for _ in times]
    records = pipeline.build(spans)  # type: ignore[arg-type]
    for record, when in zip(records, times, strict=True):
        record.event_timestamp = when.astimezone(UTC)
    if not ledger:
        InteractionWriter(store).write(records)
        return [r.id for r in records]
    log = Ledger(store, keystore.signing_key(), row_columns=COLUMNS, checkpoint_seconds=3600)
    try:
        InteractionWriter(store, log).write(records)
    finally:
        log.close()
    return [r.id for r in records]


def wait_for_engine_time(store: Store, moment: datetime, timeout: float = 30.0) -> None:
    """Until the engine's own clock (which ClickHouse's TTLs read) has passed ``moment``.

    The application's time is a ``ManualClock`` in tests; ClickHouse's TTL is not, so a test
    that needs a TTL to have passed waits for exactly that condition, checked against the
    engine, instead of sleeping a margin on the wall clock."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not store.scalar("SELECT now64(6) > {m:DateTime64(6, 'UTC')}",
                           {"m": moment.astimezone(UTC)}):
        assert time.monotonic() < deadline, f"engine clock never reached {moment}"
        pause.wait(0.05)
