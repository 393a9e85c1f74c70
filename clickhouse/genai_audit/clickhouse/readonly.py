"""Read-only SQL for ``genai-audit query``: one statement, as ClickHouse parses it, read-only.

``run_read_only`` decides what reaches the engine without a hand-written splitter:

1. The connection is made read-only first (``Store.make_read_only``: ``readonly = 1`` as a
   session setting on the embedded engine, a request setting on a server; never query text).
   The engine then refuses every write, DDL, settings change and most table functions.
2. ClickHouse's own parser reads the user's text, passed as a bound *string parameter* to
   ``formatQuery``: it raises on several statements (``Multi-statements are not allowed``) and
   otherwise returns the one statement, formatted canonically (comments dropped, every string
   re-quoted). Only that canonical text is used from here on; it must format to itself.
3. Its AST (``EXPLAIN AST``, which parses and does not run the statement) must be a SELECT
   (``WITH``, ``UNION``, ``INTERSECT``/``EXCEPT`` included), ``SHOW TABLES``-like,
   ``SHOW COLUMNS`` or ``DESCRIBE``; with no table function (``file``, ``url``, ``s3``,
   ``remote``, ``merge``...), no function of that name either (the scalar ``file()`` reads
   files even with ``readonly = 1``), no ``SETTINGS`` clause, no ``INTO OUTFILE`` (written
   even with ``readonly = 1``) and no ``FORMAT`` clause (the CLI formats the rows).
4. The canonical statement runs, with the caller's parameters bound.

``read_statement`` is the same check for a ClickHouse HTTP client talking to the store's
owner (``genai_audit.exporter.gateway.read_server``): such a client appends ``FORMAT X``
to what it sends, so a trailing FORMAT of ``OUTPUT_FORMATS`` is taken off (and the rest
checked as above); it also allows ``EXISTS`` and ``EXPLAIN AST``/``SYNTAX`` (parsed, never
run), which clickhouse-connect itself sends.

chDB's ``file()`` reads any path the process can (its ``user_files_path`` is not enforced),
including the keystore beside the store: steps 1 and 3 are what keep it out of reach.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.query import QueryResult

from genai_audit.clickhouse.errors import QueryRejected, StoreError
from genai_audit.clickhouse.store import Store

# The root AST node of each statement kind a reader may run, and what to call it.
ALLOWED_ROOTS = {"SelectWithUnionQuery": "SELECT", "ShowTables": "SHOW",
                 "ShowColumns": "SHOW COLUMNS", "DescribeQuery": "DESCRIBE",
                 "ExistsTableQuery": "EXISTS", "ExistsDatabaseQuery": "EXISTS",
                 "ExistsViewQuery": "EXISTS", "Explain": "EXPLAIN"}
# EXPLAIN kinds that only parse (the statement explained is checked like any other).
_EXPLAIN_KINDS = frozenset({"EXPLAIN AST", "EXPLAIN SYNTAX"})
# Statements whose direct children name what they look at (EXISTS TABLE db.t).
_NAMING_ROOTS = frozenset({"ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery"})
# Output formats a client may ask for: row formats of the engine that write to the
# response only (no file, no schema registry).
OUTPUT_FORMATS = frozenset({
    "Native", "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "TabSeparatedWithNames",
    "TSVWithNames", "TabSeparatedWithNamesAndTypes", "TSVWithNamesAndTypes", "CSV",
    "CSVWithNames", "CSVWithNamesAndTypes", "JSON", "JSONCompact", "JSONEachRow",
    "JSONCompactEachRow", "JSONStrings", "JSONCompactStrings", "JSONColumnsWithMetadata",
    "RowBinary", "RowBinaryWithNames", "RowBinaryWithNamesAndTypes", "Parquet", "Arrow",
    "ArrowStream", "Pretty", "PrettyCompact", "Vertical", "Values", "Null"})
_TRAILING_FORMAT = re.compile(r"\nFORMAT (\w+)$")
# The direct children those statements have; anything else is a clause a reader may not use.
_STATEMENT_PARTS = frozenset({"ExpressionList", "TableExpression"})
_CLAUSES = {"Literal": "INTO OUTFILE", "Identifier": "FORMAT", "Set": "SETTINGS"}
# The client appends `FORMAT Native` to every query it sends (EXPLAIN included).
_CLIENT_FORMAT = "Identifier Native"
# Table functions that are also ordinary functions and read nothing but their arguments:
# format('{} {}', a, b) the string function (the table function format() is refused by
# readonly = 1 anyway). file() is NOT one of them: the scalar file() reads a file.
HARMLESS_HOMONYMS = frozenset({"format"})


def run_read_only(store: Store, sql: str,
                  parameters: Mapping[str, Any] | None = None) -> QueryResult:
    """Run ``sql`` if it is one read-only statement; raise ``QueryRejected`` saying why not.

    ``parameters`` are the values for the statement's ``{name:Type}`` placeholders. The
    store is read-only afterwards (for good: a read-only session cannot be made writable).
    """
    store.make_read_only()
    statement = single_statement(store, sql)
    check_ast(ast_lines(store, statement, parameters), table_functions(store))
    return store.query(statement, parameters)


@dataclass(frozen=True)
class ReadStatement:
    """One checked statement: its canonical text without FORMAT, its kind and the output
    format asked for (``None``: none given)."""

    text: str
    kind: str
    fmt: str | None


def read_statement(store: Store, sql: str,
                   parameters: Mapping[str, str] | None = None) -> ReadStatement:
    """Check ``sql`` as ``run_read_only`` does, for a client that may end it with
    ``FORMAT X``; nothing runs. ``parameters``: values in ClickHouse's text form (as an
    HTTP client sends them). ``QueryRejected`` says why a statement is refused.

    The FORMAT clause is taken off the end of the parser's canonical text; what is left
    must be one stable statement that, with the clause put back, is the canonical text
    again. Its AST comes straight from the engine (``Store.raw_read``: no driver appends a
    FORMAT of its own to the EXPLAIN), so it is checked with no exception for FORMAT."""
    statement = single_statement(store, sql)
    fmt = None
    match = _TRAILING_FORMAT.search(statement)
    if match is not None:
        fmt, statement = match.group(1), statement[:match.start()]
        if fmt not in OUTPUT_FORMATS:
            raise QueryRejected(f"FORMAT {fmt} is not offered here; use one of "
                                f"{', '.join(sorted(OUTPUT_FORMATS))}")
        if single_statement(store, statement) != statement or \
                single_statement(store, f"{statement}\nFORMAT {fmt}") != match.string:
            raise QueryRejected("FORMAT must end the query, once")
    try:
        listing = store.raw_read("EXPLAIN AST " + statement, parameters or {},
                                 "TabSeparated")[0].decode("utf-8")
    except StoreError as exc:
        raise QueryRejected(f"not a valid query: {_engine_message(exc)}") from exc
    lines = listing.splitlines()
    if any(line.strip() == _CLIENT_FORMAT for line in lines if line[:1] == " "
           and line[1:2] != " "):
        raise QueryRejected("FORMAT must end the query, once")
    kind = check_ast(lines, table_functions(store))
    return ReadStatement(statement, kind, fmt)


def single_statement(store: Store, sql: str) -> str:
    """The one statement in ``sql`` as ClickHouse's parser formats it (``QueryRejected`` if
    it holds none or several). The text is a bound value: the parser reads it, nothing runs."""
    if not sql.strip().strip(";").strip():
        raise QueryRejected("empty query")
    statement = _format(store, sql)
    if _format(store, statement) != statement:  # what runs is exactly what was parsed
        raise QueryRejected("the parser's canonical form of this query is not stable")
    return statement


def _format(store: Store, sql: str) -> str:
    try:
        return str(store.scalar("SELECT formatQuery({q:String})", {"q": sql}))
    except StoreError as exc:
        raise QueryRejected(f"not one valid statement: {_engine_message(exc)}") from exc


def ast_lines(store: Store, statement: str,
              parameters: Mapping[str, Any] | None = None) -> list[str]:
    """``EXPLAIN AST`` of one canonical statement (parsed, not run)."""
    try:
        return [str(r[0]) for r in store.rows("EXPLAIN AST " + statement, parameters)]
    except StoreError as exc:
        raise QueryRejected(f"not a valid query: {_engine_message(exc)}") from exc


def table_functions(store: Store) -> frozenset[str]:
    """Every table function name the engine knows, lower case."""
    return frozenset(str(r[0]).lower() for r in store.rows("SELECT name FROM "
                                                           "system.table_functions"))


def check_ast(lines: Sequence[str], table_functions: Collection[str]) -> str:
    """The statement kind of an ``EXPLAIN AST`` listing, or ``QueryRejected`` saying why not.

    One node per line, indented one space per level. An alias or identifier containing a
    line break adds lines of its own: every rule here only ever rejects on a line, so such
    lines can make a query be refused but never hide a real node.
    """
    if not lines:
        raise QueryRejected("the parser returned no statement")
    root = _node(lines[0])
    if root not in ALLOWED_ROOTS:
        raise QueryRejected("only SELECT / WITH, SHOW, DESCRIBE and EXISTS queries are "
                            f"allowed, this is a {root or 'statement of unknown kind'}")
    if root == "Explain":
        head = lines[0].split(" (children", 1)[0].strip()
        if head.split(None, 1)[-1] not in _EXPLAIN_KINDS:
            raise QueryRejected(f"only EXPLAIN AST and EXPLAIN SYNTAX are allowed, this is "
                                f"a {head}")
        # one child, the statement explained (checked as any other): a second child at
        # depth 1 (settings of the EXPLAIN, a FORMAT) is refused
        if len(lines) < 2 or _depth(lines[1]) != 1 or any(_depth(line) <= 1
                                                          for line in lines[2:]):
            raise QueryRejected("EXPLAIN takes one statement and nothing else")
        check_ast([line[1:] for line in lines[1:]], table_functions)
        return ALLOWED_ROOTS[root]
    parts = _STATEMENT_PARTS | ({"Identifier"} if root in _NAMING_ROOTS else frozenset())
    previous = ""
    for line in lines[1:]:
        depth, words = len(line) - len(line.lstrip(" ")), line.split()
        kind = words[0] if words else ""
        if depth == 1 and kind not in parts and line.strip() != _CLIENT_FORMAT:
            clause = _CLAUSES.get(kind, kind)
            raise QueryRejected(f"{clause} is not allowed here (the query runs read-only and "
                                "the command formats its rows)")
        if kind == "Set":
            raise QueryRejected("SETTINGS is not allowed (the query runs with readonly = 1)")
        if kind == "Function" and len(words) > 1:
            name = words[1].lower()
            if previous == "TableExpression" or (name in table_functions
                                                 and name not in HARMLESS_HOMONYMS):
                raise QueryRejected(f"{words[1]}: table functions (and file()) are not "
                                    "allowed: a query reads the store's tables only")
        previous = kind
    return ALLOWED_ROOTS[root]


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _node(line: str) -> str:
    words = line.split()
    return words[0] if words else ""


def _engine_message(exc: StoreError) -> str:
    """The engine's reason, without its code prefix and the echo of our wrapping query."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.rsplit("DB::Exception: ", 1)[-1].split(" (version ", 1)[0]
    return text.split(": In scope SELECT formatQuery(", 1)[0][:300]
