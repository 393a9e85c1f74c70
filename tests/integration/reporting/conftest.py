"""Fixtures for the report, Grafana and cookbook tests: a store holding ``demo_data.SPECS``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from demo_data import SPECS, write_specs

from genai_audit.clickhouse.migrate import migrate
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore


@pytest.fixture
def audit_store(store: Store, keystore: LocalKeyStore) -> Store:
    """A fresh database with the demo rows: for tests that add tables or rows."""
    write_specs(store, keystore, SPECS)
    assert store.scalar("SELECT count() FROM interactions") == len(SPECS)
    return store


@pytest.fixture(scope="module")
def shared_audit_store(store_dsn: str, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Store]:
    """The demo rows once per module, for tests that only read (panels, renderers)."""
    db = Store.open(store_dsn, f"r_{uuid.uuid4().hex[:16]}")
    migrate(db)
    write_specs(db, LocalKeyStore(tmp_path_factory.mktemp("keys")), SPECS)
    yield db
    db.command(f"DROP DATABASE IF EXISTS `{db.database}`")
