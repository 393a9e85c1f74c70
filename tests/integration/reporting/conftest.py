"""Fixtures for the report, Grafana and cookbook tests: a store holding ``demo_data.SPECS``."""

from __future__ import annotations

import pytest
from demo_data import SPECS, write_specs

from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore


@pytest.fixture
def audit_store(store: Store, keystore: LocalKeyStore) -> Store:
    write_specs(store, keystore, SPECS)
    assert store.scalar("SELECT count() FROM interactions") == len(SPECS)
    return store


