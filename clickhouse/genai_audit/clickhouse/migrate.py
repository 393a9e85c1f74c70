"""Versioned schema migrations: ``migrations/NNN_name.sql``, shipped as package data.

``migrate`` applies the missing ones in order and records each in ``schema_migrations``
(version, name, checksum). Idempotent: every statement is ``IF NOT EXISTS``-safe, and a
recorded version is never applied twice. A recorded migration whose file changed is an
error, not a silent re-run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from genai_audit.clickhouse.cluster import for_cluster
from genai_audit.clickhouse.errors import MigrationError, StoreError
from genai_audit.clickhouse.store import Store

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(6, 'UTC') DEFAULT now64(6)
) ENGINE = MergeTree ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines()
                         if not line.lstrip().startswith("--"))
        return [s.strip() for s in body.split(";") if s.strip()]


def available_migrations() -> list[Migration]:
    folder = resources.files("genai_audit.clickhouse").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def applied_versions(store: Store, cluster: str | None = None) -> dict[int, str]:
    # Check before creating: a least-privilege writer may read but not create tables.
    if not store.scalar("EXISTS TABLE schema_migrations"):
        for statement in _for(store, BOOTSTRAP, cluster):
            store.command(statement)
    return {int(v): str(c) for v, c in store.rows(
        "SELECT version, any(checksum) FROM schema_migrations GROUP BY version")}


def cluster_statements(migration: Migration, cluster: str, database: str) -> list[str]:
    """The migration's statements as they run on ``cluster`` (``clickhouse/cluster.py``)."""
    return [s for statement in migration.statements()
            for s in for_cluster(statement, cluster, database)]


def _for(store: Store, statement: str, cluster: str | None) -> list[str]:
    return [statement] if cluster is None else for_cluster(statement, cluster, store.database)


def migrate(store: Store, cluster: str | None = None) -> list[Migration]:
    """Apply what is missing; return what was applied (empty when up to date).

    ``cluster``: run every statement ``ON CLUSTER`` with replicated engines (the
    ``cluster`` setting; see ``cluster.py``)."""
    done = applied_versions(store, cluster)
    applied = []
    for migration in available_migrations():
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:03d}_{migration.name} changed after it was "
                    "applied; add a new migration instead of editing an applied one")
            continue
        for statement in (migration.statements() if cluster is None else
                          cluster_statements(migration, cluster, store.database)):
            try:
                store.command(statement)
            except StoreError as exc:
                raise MigrationError(
                    f"migration {migration.version:03d}_{migration.name} failed: {exc}") from exc
        store.insert("schema_migrations", [[migration.version, migration.name,
                                            migration.checksum]],
                     ["version", "name", "checksum"])
        applied.append(migration)
    return applied


def schema_version(store: Store) -> int:
    done = applied_versions(store)
    return max(done) if done else 0
