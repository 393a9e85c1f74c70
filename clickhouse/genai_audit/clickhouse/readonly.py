"""Read-only SQL for ``genai-audit query``: parsed by ClickHouse, run with ``readonly=1``.

A query is accepted only if it is one statement and ClickHouse's own parser
(``EXPLAIN AST``) says it is a SELECT (``WITH ... SELECT`` included). It then runs with
``readonly = 1``, which also forbids changing settings from inside the query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genai_audit.clickhouse.errors import QueryRejected, StoreError
from genai_audit.clickhouse.store import Store

READONLY_SETTINGS = {"readonly": 1}
_SELECT_NODES = ("SelectWithUnionQuery", "SelectIntersectExceptQuery")


def split_statements(sql: str) -> list[str]:
    """Split on top-level ``;`` (outside quotes and comments); drop empty statements."""
    statements, current, i, n = [], [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = _closing_quote(sql, i)
            current.append(sql[i:end])
            i = end
            continue
        if sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _closing_quote(sql: str, start: int) -> int:
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise QueryRejected("unterminated quoted string or identifier")


def check_read_only(store: Store, sql: str,
                    parameters: Mapping[str, Any] | None = None) -> str:
    """Return the single SELECT statement, or raise ``QueryRejected`` saying why not.

    ``parameters`` are the values for the statement's ``{name:Type}`` placeholders (the
    parser needs them bound to parse it).
    """
    statements = split_statements(sql)
    if not statements:
        raise QueryRejected("empty query")
    if len(statements) > 1:
        raise QueryRejected(f"one statement only, got {len(statements)}")
    statement = statements[0]
    try:
        ast = store.rows("EXPLAIN AST " + statement, parameters, settings=READONLY_SETTINGS)
    except StoreError as exc:
        raise QueryRejected(f"not a valid query: {str(exc).splitlines()[0][:300]}") from exc
    head = str(ast[0][0]).strip() if ast else ""
    if not head.startswith(_SELECT_NODES):
        kind = head.split(" ")[0] or "unknown"
        raise QueryRejected(f"only SELECT / WITH queries are allowed, this is a {kind}")
    return statement
