"""The owner's read service on an embedded store shared with its writer (in-process)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from genai_audit.exporter.gateway.read_auth import Reader
from genai_audit.exporter.gateway.read_service import ReadRefused, ReadService

pytestmark = pytest.mark.integration

ACME = Reader("acme", "auditor", "acme")
EVERYONE = Reader("all", "auditor")


def _count(service: ReadService, reader: Reader, table: str) -> int:
    return int(service.run(reader, f"SELECT count() FROM {table}", {}, {}).body)


def test_tenant_scope_hides_other_tenants_and_untenanted_tables(store):
    at = datetime.now(UTC)
    store.insert("control_events", [[at, "maintenance", True, "ok", "w1"]],
                 ["at", "kind", "ok", "detail", "writer_id"])
    store.insert("retention_policies", [["acme", 30, 30, "a", "r", at],
                                        ["globex", 30, 30, "a", "r", at]],
                 ["tenant_id", "retention_days", "content_retention_days", "changed_by",
                  "reason", "changed_at"])
    service = ReadService(store)
    assert _count(service, EVERYONE, "control_events") == 1
    assert _count(service, ACME, "control_events") == 0
    assert _count(service, EVERYONE, "retention_policies") == 2
    assert _count(service, ACME, "retention_policies") == 1
    assert _count(service, ACME, "schema_migrations") == _count(service, EVERYONE,
                                                                "schema_migrations") > 0


def test_a_read_leaves_the_writers_connection_writable(store):
    service = ReadService(store)
    with pytest.raises(ReadRefused, match="only SELECT"):
        service.run(EVERYONE, "INSERT INTO control_events (kind) VALUES ('x')", {}, {})
    assert service.run(EVERYONE, "SELECT getSetting('readonly')", {}, {}).body == b"1\n"
    assert store.scalar("SELECT getSetting('readonly')") == 0
    store.insert("control_events", [[datetime.now(UTC), "k", True, "", "w"]],
                 ["at", "kind", "ok", "detail", "writer_id"])
    assert store.scalar("SELECT count() FROM control_events") == 1


def test_the_owner_bounds_every_read_and_a_client_may_only_lower_the_bounds(store):
    small = ReadService(store, max_result_bytes=1000, max_memory_bytes=1 << 20)
    sql = "SELECT number FROM system.numbers LIMIT 100000"
    with pytest.raises(ReadRefused) as refused:
        small.run(EVERYONE, sql, {}, {"max_result_bytes": "100000000"})
    assert refused.value.code == 396 and refused.value.status == 500
    assert "Limit for result exceeded" in str(refused.value)
    assert len(small.run(EVERYONE, "SELECT arrayJoin(range(10))", {}, {}).body) == 20
    with pytest.raises(ReadRefused, match="Limit for result exceeded"):
        ReadService(store).run(EVERYONE, sql, {}, {"max_result_bytes": "1000"})
    with pytest.raises(ReadRefused, match="memory limit exceeded") as refused:
        small.run(EVERYONE, "SELECT arrayJoin(range(1000000))", {}, {})
    assert refused.value.code == 241
