"""``Store.insert``'s settings and column types, against a recording client (no engine)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from genai_audit.clickhouse.errors import StoreError
from genai_audit.clickhouse.store import Store


class RecordingClient:
    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[str], dict[str, Any]]] = []
        self.described: list[tuple[str, list[str]]] = []
        self.fail_next = False
        self.latest: dict[tuple[str, ...], list[str]] = {}  # the last types described

    def create_insert_context(self, table: str, column_names: list[str]) -> SimpleNamespace:
        self.described.append((table, column_names))
        types = [f"type of {c} #{len(self.described)}" for c in column_names]
        self.latest[tuple(column_names)] = types
        return SimpleNamespace(column_types=types)

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: list[str],
               column_types: list[str], settings: dict[str, Any]) -> None:
        assert column_types == self.latest[tuple(column_names)]
        if self.fail_next:
            self.fail_next = False
            raise DatabaseError("Code: 53. DB::Exception: Type mismatch")
        self.inserts.append((table, column_names, settings))


@pytest.mark.parametrize(("dsn", "expected"), [
    ("chdb:///var/lib/audit", {"max_threads": 1, "insert_deduplication_token": "t1"}),
    ("http://clickhouse:8123", {"insert_deduplication_token": "t1"}),
])
def test_embedded_inserts_take_one_thread_a_server_decides_for_itself(dsn, expected):
    client = RecordingClient()
    Store(client, dsn, "audit").insert("interactions", [[1]], ("a",),  # type: ignore[arg-type]
                                       settings={"insert_deduplication_token": "t1"})
    assert client.inserts == [("interactions", ["a"], expected)]


def test_the_callers_settings_win():
    client = RecordingClient()
    Store(client, "chdb:///var/lib/audit", "audit").insert(  # type: ignore[arg-type]
        "interactions", [[1]], ["a"], settings={"max_threads": 4})
    assert client.inserts[0][2] == {"max_threads": 4}


def test_column_types_are_described_once_per_columns_and_again_after_a_failure():
    client = RecordingClient()
    store = Store(client, "http://clickhouse:8123", "audit")  # type: ignore[arg-type]
    for _ in range(3):
        store.insert("interactions", [[1, 2]], ("a", "b"))
    store.insert("interactions", [[1]], ("a",))
    assert client.described == [("interactions", ["a", "b"]), ("interactions", ["a"])]
    client.fail_next = True
    with pytest.raises(StoreError):
        store.insert("interactions", [[1, 2]], ("a", "b"))
    store.insert("interactions", [[1, 2]], ("a", "b"))  # described again: the schema may differ
    assert client.described[-1] == ("interactions", ["a", "b"])
    assert len(client.described) == 3 and len(client.inserts) == 5
