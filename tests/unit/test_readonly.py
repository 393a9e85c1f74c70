"""``check_ast``: the statement kinds and clauses a reader may run, from ``EXPLAIN AST`` text.

The listings are the engine's own (chDB 26.9, ``EXPLAIN AST`` through clickhouse-connect,
which appends ``FORMAT Native``); tests/integration/test_query_gate.py runs the whole gate.
"""

from __future__ import annotations

import pytest

from genai_audit.clickhouse.errors import QueryRejected
from genai_audit.clickhouse.readonly import check_ast

TABLE_FUNCTIONS = frozenset({"file", "url", "s3", "remote", "merge", "numbers", "format",
                             "python"})


def listing(text: str) -> list[str]:
    return text.strip("\n").split("\n")


SELECT_WITH_FILE = listing("""
SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Function file (children 1)
     ExpressionList (children 1)
      Literal '/keys/master.key'
 Identifier Native""")

SELECT_FROM_TABLE_FUNCTION = listing("""
SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function someFutureTableFunction (children 1)
       ExpressionList (children 1)
        Literal '/x'
 Identifier Native""")

OUTFILE = listing("""
SelectWithUnionQuery (children 3)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 1)
    Literal UInt64_1
 Literal '/tmp/x'
 Identifier Native""")

SUBQUERY_SETTINGS = listing("""
SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Literal UInt64_1
   Set
 Identifier Native""")

FORMAT_CSV = listing("""
SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 1)
    Literal UInt64_1
 Identifier CSV""")

# SELECT format('{}', 1) AS `a\n Identifier Native\nb`: an alias with line breaks adds lines
ALIAS_WITH_LINE_BREAKS = listing("""
SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 1)
    Function format (alias a
 Identifier Native
b) (children 1)
     ExpressionList (children 2)
      Literal '{}'
      Literal UInt64_1
 Identifier Native""")


def test_reads_pass_with_their_kind():
    assert check_ast(ALIAS_WITH_LINE_BREAKS, TABLE_FUNCTIONS) == "SELECT"
    assert check_ast(["ShowTables (children 1)", " Identifier Native"], TABLE_FUNCTIONS) == "SHOW"
    describe = ["DescribeQuery (children 2)", " TableExpression (children 1)",
                "  TableIdentifier interactions", " Identifier Native"]
    assert check_ast(describe, TABLE_FUNCTIONS) == "DESCRIBE"


@pytest.mark.parametrize("lines, why", [
    (SELECT_WITH_FILE, "file: table functions"),
    (SELECT_FROM_TABLE_FUNCTION, "someFutureTableFunction: table functions"),
    (OUTFILE, "INTO OUTFILE"),
    (SUBQUERY_SETTINGS, "SETTINGS"),
    (FORMAT_CSV, "FORMAT"),
    (["InsertQuery   (children 2)", " Identifier t"], "this is a InsertQuery"),
    (["Explain EXPLAIN (children 2)", " SelectWithUnionQuery (children 1)"], "Explain"),
    (["ShowCreateTableQuery  t (children 2)", " Identifier t"], "ShowCreateTableQuery"),
    (["DescribeQuery (children 2)", " TableExpression (children 1)",
      "  Function file (children 1)"], "file: table functions"),
    ([], "no statement"),
])
def test_everything_else_is_refused(lines, why):
    with pytest.raises(QueryRejected, match=why):
        check_ast(lines, TABLE_FUNCTIONS)


def test_a_line_break_in_an_alias_can_refuse_but_not_hide():
    hiding = [*SELECT_WITH_FILE[:4], "    Literal 1 (alias x", "Function file) (children 1)",
              *SELECT_WITH_FILE[4:]]
    with pytest.raises(QueryRejected, match="file"):
        check_ast(hiding, TABLE_FUNCTIONS)
    forged = [*SUBQUERY_SETTINGS[:4], "    Literal 1 (alias x", " Literal '/tmp/x') ",
              *FORMAT_CSV[-1:]]
    with pytest.raises(QueryRejected):
        check_ast(forged, TABLE_FUNCTIONS)


# What clickhouse-connect sends through the owner's read interface (engine listings).
EXPLAIN_AST = listing("""
Explain EXPLAIN AST (children 1)
 SelectWithUnionQuery (children 1)
  ExpressionList (children 1)
   SelectQuery (children 1)
    ExpressionList (children 1)
     Literal UInt64_1""")


def test_exists_and_explain_ast_pass():
    assert check_ast(["ExistsTableQuery d t (children 2)", " Identifier d", " Identifier t"],
                     TABLE_FUNCTIONS) == "EXISTS"
    assert check_ast(["ExistsDatabaseQuery d  (children 1)", " Identifier d"],
                     TABLE_FUNCTIONS) == "EXISTS"
    assert check_ast(EXPLAIN_AST, TABLE_FUNCTIONS) == "EXPLAIN"


@pytest.mark.parametrize("lines, why", [
    (["Explain EXPLAIN PIPELINE (children 1)", *EXPLAIN_AST[1:]], "only EXPLAIN AST"),
    ([EXPLAIN_AST[0], *(" " + line for line in SELECT_WITH_FILE)], "file: table functions"),
    ([*EXPLAIN_AST, " Set"], "one statement and nothing else"),
    (["Explain EXPLAIN AST (children 1)", " InsertQuery   (children 2)", "  Identifier t"],
     "InsertQuery"),
    (["Explain EXPLAIN AST (children 1)"], "one statement"),
    (["ExistsTableQuery d t (children 2)", " Identifier d", " Set"], "SETTINGS"),
])
def test_explain_and_exists_refuse_what_they_wrap(lines, why):
    with pytest.raises(QueryRejected, match=why):
        check_ast(lines, TABLE_FUNCTIONS)
