"""The schema on a ClickHouse cluster: each migration statement rewritten ``ON CLUSTER``.

The migrations are written once, for one node (the embedded engine, a single server, and
ClickHouse Cloud, whose shared engines take the plain DDL). ``for_cluster`` turns each of
their statements into its replicated form, so one set of migrations serves every
deployment:

* ``CREATE TABLE``, ``ALTER TABLE``, ``CREATE [OR REPLACE] VIEW`` and ``DROP VIEW`` run
  ``ON CLUSTER <name>``;
* ``MergeTree``-family engines become their ``Replicated`` form, with the conventional
  Keeper path ``/clickhouse/tables/{shard}/{database}/{table}`` and replica ``{replica}``
  (macros each server defines); TTL, projections, partitioning and ORDER BY are unchanged
  and replicate with the table;
* insert deduplication keeps its window: ``non_replicated_deduplication_window`` (a plain
  MergeTree's) becomes ``replicated_deduplication_window``;
* every replicated table gets a ``Distributed`` companion ``<table>_all`` for readers of a
  sharded cluster (on one shard with N replicas, the local table already holds everything);
  a column added later is added to it too.

The rewriting is by the statements' fixed shapes, which the migrations keep; a statement
that matches none of the known shapes is an error, never passed through unchanged, and a
test parses every rewritten statement with the engine (``EXPLAIN AST``).
"""

from __future__ import annotations

import re

from genai_audit.clickhouse.dsn import validate_identifier
from genai_audit.clickhouse.errors import MigrationError

REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"

_CREATE_TABLE = re.compile(r"^(CREATE TABLE IF NOT EXISTS\s+)([A-Za-z_][A-Za-z0-9_]*)", re.I)
_ALTER_TABLE = re.compile(r"^(ALTER TABLE\s+)([A-Za-z_][A-Za-z0-9_]*)", re.I)
_VIEW = re.compile(r"^((?:CREATE (?:OR REPLACE )?VIEW|DROP VIEW)(?: IF (?:NOT )?EXISTS)?\s+)"
                   r"([A-Za-z_][A-Za-z0-9_]*)", re.I)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(Replacing|Summing|Aggregating|Collapsing)?MergeTree"
                     r"(?:\s*\(([^)]*)\))?", re.I)
# "ADD COLUMN [IF NOT EXISTS] name Type", up to a DEFAULT, codec, TTL or position clause
_ADD_COLUMN = re.compile(r"\s+ADD COLUMN\s+(?:IF NOT EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*\s+"
                         r"(?:(?!\s(?:DEFAULT|MATERIALIZED|ALIAS|CODEC|TTL|AFTER|FIRST)\b)"
                         r"[^;])+?)(?=\s+(?:DEFAULT|MATERIALIZED|ALIAS|CODEC|TTL|AFTER|FIRST)"
                         r"\b|\s*$)", re.I | re.S)
_DEDUP = re.compile(r"\bnon_replicated_deduplication_window\b")
_PASS_THROUGH = re.compile(r"^(SELECT|INSERT|OPTIMIZE|SYSTEM)\b", re.I)


def for_cluster(statement: str, cluster: str, database: str) -> list[str]:
    """``statement`` (one migration statement) for ``cluster``: the rewritten statement,
    plus the ``Distributed`` companion when it creates a table."""
    validate_identifier(cluster, "cluster")
    validate_identifier(database, "database")
    on = f" ON CLUSTER {cluster}"
    text = statement.strip()
    if match := _CREATE_TABLE.match(text):
        table = match.group(2)
        engine = _ENGINE.search(text)
        if engine is None:
            raise MigrationError(f"CREATE TABLE {table}: no MergeTree engine to replicate")
        family, args = engine.group(1) or "", (engine.group(2) or "").strip()
        replicated = (f"ENGINE = Replicated{family}MergeTree('{REPLICA_PATH}', "
                      f"'{REPLICA_NAME}'{', ' + args if args else ''})")
        text = text[:engine.start()] + replicated + text[engine.end():]
        text = _DEDUP.sub("replicated_deduplication_window", text)
        text = text[:match.end()] + on + text[match.end():]
        distributed = (f"CREATE TABLE IF NOT EXISTS {table}_all{on} AS {database}.{table} "
                       f"ENGINE = Distributed({cluster}, {database}, {table}, rand())")
        return [text, distributed]
    if match := _ALTER_TABLE.match(text):
        local = text[:match.end()] + on + text[match.end():]
        column = _ADD_COLUMN.match(text[match.end():])
        if column is None:  # indexes, projections, TTLs, settings: the local table's own
            return [local]
        # the readers' Distributed table gets the new column too (it copied the columns
        # its table had when it was created)
        return [local, f"ALTER TABLE {match.group(2)}_all{on} ADD COLUMN IF NOT EXISTS "
                       f"{column.group(1)}"]
    if match := _VIEW.match(text):
        return [text[:match.end()] + on + text[match.end():]]
    if _PASS_THROUGH.match(text):
        return [text]
    raise MigrationError(f"cannot run on a cluster, unknown statement shape: {text[:60]!r}")
