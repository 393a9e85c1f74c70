"""Building records and ledgered stores for the ledger tests (no mocks: real chDB)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.store import Store
from genai_audit.clickhouse.writer import COLUMNS, InteractionWriter
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.record import AuditRecord, Content, ContentState, Flag

BASE_TIME = datetime.now(UTC).replace(microsecond=123456) - timedelta(days=1)


def make_record(i: int = 0, **overrides: Any) -> AuditRecord:
    values: dict[str, Any] = dict(
        id=str(uuid.uuid4()), trace_id=f"{i:032x}", span_id=f"{i:016x}",
        event_timestamp=BASE_TIME + timedelta(microseconds=7 * i), tenant_id="acme",
        user_id=None, session_id=f"s-{i % 5}", tool_name="hr_helpdesk", feature_name="chat",
        region="eu", data_class="internal", service_name="svc", operation_name="chat",
        provider="openai", model="gpt-4o", response_model="gpt-4o-2024", request_id=f"req-{i}",
        prompt_tokens=10 + i, response_tokens=20, cached_tokens=0, latency_ms=150,
        status_code=200, error_type="", finish_reasons=("stop",), is_streaming=False,
        content=Content(), user_key="k" * 64, total_cost=Decimal("0.000123456"),
        pricing_version="2025-01", content_state=ContentState.PLAINTEXT,
        prompt_text=f'[{{"role":"user","content":"question {i}"}}]',
        response_text=f'[{{"role":"assistant","content":"answer {i}"}}]',
        response_preview=f"answer {i}", prompt_hash=bytes(range(32)),
        response_hash=bytes(32), pii_entity_counts={"EMAIL": 1} if i % 3 == 0 else {},
        flags={Flag.NO_USER} if i % 4 == 0 else set(), retention_days=365,
    )
    values.update(overrides)
    return AuditRecord(**values)


def ledgered_writer(store: Store, keystore: LocalKeyStore, **kwargs: Any) -> InteractionWriter:
    # no timer firing after the test's database is dropped (tests sign with close())
    kwargs.setdefault("checkpoint_seconds", 3600)
    ledger = Ledger(store, keystore.signing_key(), row_columns=COLUMNS, **kwargs)
    return InteractionWriter(store, ledger)


def populate(store: Store, keystore: LocalKeyStore, n: int = 60, batch: int = 10,
             tenants: tuple[str, ...] = ("acme",), checkpoint_records: int = 16) -> list[str]:
    """Write ``n`` records in batches, checkpointing often; flush at the end. Returns ids."""
    writer = ledgered_writer(store, keystore, checkpoint_records=checkpoint_records,
                             checkpoint_seconds=3600)
    ids: list[str] = []
    for start in range(0, n, batch):
        records = [make_record(i, tenant_id=tenants[i % len(tenants)])
                   for i in range(start, min(n, start + batch))]
        writer.write(records)
        ids.extend(r.id for r in records)
    assert writer.ledger is not None
    writer.ledger.close()
    return ids
