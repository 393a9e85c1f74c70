"""``Store.insert``'s settings, against a recording client (no engine needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from genai_audit.clickhouse.store import Store


class RecordingClient:
    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[str], dict[str, Any]]] = []

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: list[str],
               settings: dict[str, Any]) -> None:
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
