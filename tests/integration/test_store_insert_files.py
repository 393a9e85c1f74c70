"""The embedded engine's insert files (ciphertext, metadata) stay in the store directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genai_audit.clickhouse.dsn import embedded_path
from genai_audit.clickhouse.store import INSERT_TMP

pytestmark = pytest.mark.integration


def test_insert_files_are_written_inside_the_store(store, monkeypatch):
    """clickhouse-connect's chDB backend wrote them to /tmp, where kill -9 left them."""
    from clickhouse_connect.driver._backend import chdb_backend

    made: list[str] = []
    real = chdb_backend.tempfile.NamedTemporaryFile

    def spy(*args, **kwargs):
        handle = real(*args, **kwargs)
        made.append(handle.name)
        return handle

    monkeypatch.setattr(chdb_backend.tempfile, "NamedTemporaryFile", spy)
    store.command("CREATE TABLE probe (x UInt8) ENGINE = Memory")
    store.insert("probe", [[1], [2]], ["x"])
    assert store.scalar("SELECT sum(x) FROM probe") == 3
    home = embedded_path(store.dsn)
    assert made and all(Path(name).parent == home / INSERT_TMP for name in made), made
    assert oct((home / INSERT_TMP).stat().st_mode & 0o777) == "0o700"


def test_files_a_killed_insert_left_are_removed_when_the_store_opens(tmp_path):
    home = tmp_path / "store"
    (home / INSERT_TMP).mkdir(parents=True)
    leftover = home / INSERT_TMP / "tmpab12cd.native"
    leftover.write_bytes(b"ciphertext and metadata of a batch")
    env = {**os.environ, "GENAI_AUDIT_CONFIG": ""}
    # init opens the store like any owner (a read command refuses a store with no schema)
    done = subprocess.run([sys.executable, "-m", "genai_audit.cli.main", "init", "--dsn",
                           f"chdb://{home}"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not leftover.exists()
