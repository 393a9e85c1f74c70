"""``genai-audit query`` lets exactly one read-only statement reach the engine.

Each attack below ran, exit 0, before the gate was rebuilt (issue 16, item 1): the old
hand-written splitter did not know ClickHouse's ``$$``/``$tag$`` strings, chDB runs
multi-statement text, and the ``EXPLAIN AST`` check itself ran what was smuggled. A
``SELECT`` also read any file the process can (``file()``) and wrote one (``INTO OUTFILE``).
"""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import populate

from genai_audit.cli.main import main
from genai_audit.clickhouse.errors import QueryRejected, StoreError
from genai_audit.clickhouse.readonly import run_read_only
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import LocalKeyStore
from genai_audit.masterkey import MASTER_KEY_FILE

pytestmark = pytest.mark.integration


def smuggled(statement: str, quote: str = "$$") -> str:
    """``statement`` hidden between two SELECTs: a ``'`` inside a dollar-quoted string
    opens a "quote" for a splitter that does not know dollar quoting, and the comment at
    the end closes it; ClickHouse sees three statements."""
    return f"SELECT {quote}'{quote} AS a; {statement}; SELECT 1 -- '"


def query(store_dsn: str, database: str, sql: str, *extra: str) -> int | str:
    """The exit code, or the name of the exception the command crashed with."""
    try:
        return main(["query", "--dsn", store_dsn, "--database", database, *extra, sql])
    except Exception as exc:  # the old gate crashed on some of these, after running them
        return type(exc).__name__


def key_file(store_dsn: str) -> Path:
    """The master key file of the default keystore ``<store dir>-keys`` (created if new)."""
    directory = Path(store_dsn.removeprefix("chdb://") + "-keys")
    LocalKeyStore(directory).signing_key()  # opens (and so creates) the master key
    return directory / MASTER_KEY_FILE


@pytest.fixture
def ledgered(store: Store, keystore: LocalKeyStore) -> Store:
    populate(store, keystore, n=20, batch=10, checkpoint_records=8)
    return store


@pytest.fixture
def reader(store: Store, store_dsn: str) -> Iterator[Store]:
    """A second connection to the test's database (it ends read-only, for good)."""
    connection = Store.open(store_dsn, store.database)
    yield connection
    connection.close()


def count(store: Store, table: str) -> int:
    return int(store.scalar(f"SELECT count() FROM {table}"))


@pytest.mark.parametrize("quote", ["$$", "$tag$"])
def test_smuggled_truncate_of_checkpoints_is_refused(ledgered, store_dsn, quote, capsys):
    before = count(ledgered, "ledger_checkpoints")
    assert before > 0
    code = query(store_dsn, ledgered.database,
                 smuggled("TRUNCATE TABLE ledger_checkpoints", quote))
    assert count(ledgered, "ledger_checkpoints") == before
    assert code == 2
    assert "Multi-statements are not allowed" in capsys.readouterr().err


def test_smuggled_alter_update_and_drop_are_refused(ledgered, store_dsn, capsys):
    costs = ledgered.scalar("SELECT sum(total_cost) FROM interactions")
    mutations = "SELECT count() FROM system.mutations WHERE database = currentDatabase()"
    before = ledgered.scalar(mutations)
    codes = [query(store_dsn, ledgered.database, smuggled(
        "ALTER TABLE interactions UPDATE total_cost = 0 WHERE 1 "
        "SETTINGS mutations_sync = 1"))]
    assert ledgered.scalar(mutations) == before
    assert ledgered.scalar("SELECT sum(total_cost) FROM interactions") == costs
    codes.append(query(store_dsn, ledgered.database, smuggled("DROP TABLE interactions")))
    assert ledgered.scalar("EXISTS TABLE interactions") == 1
    assert codes == [2, 2]
    assert capsys.readouterr().err.count("query rejected") == 2


class _Recorder(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).received.append(self.rfile.read(length) if length else b"(chunked body)")
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        type(self).received.append(b"GET " + self.path.encode())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []
    handler = type("Recorder", (_Recorder,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/leak", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_insert_into_function_url_sends_nothing(ledgered, store_dsn, listener, capsys):
    url, received = listener
    exfiltrate = (f"INSERT INTO FUNCTION url('{url}', 'JSONEachRow', 'k String') "
                  "SELECT toString(id) FROM interactions")
    codes = [query(store_dsn, ledgered.database, smuggled(exfiltrate)),
             query(store_dsn, ledgered.database, exfiltrate),
             query(store_dsn, ledgered.database, f"SELECT * FROM url('{url}', 'LineAsString')")]
    assert received == []
    assert codes == [2, 2, 2]
    assert capsys.readouterr().err.count("query rejected") == 3


def test_the_engine_can_read_the_default_keystore_so_query_must_not(store, store_dsn):
    """chDB's file() reads any path the process can (its user_files_path is not enforced),
    including the default keystore ``<store dir>-keys``: the gate is what keeps it out."""
    path = key_file(store_dsn)
    assert path.read_text().strip() in store.scalar("SELECT file({p:String})", {"p": str(path)})


@pytest.mark.parametrize("template", [
    "SELECT file('{key}') AS k",
    "SELECT * FROM file('{key}', 'LineAsString')",
    "SELECT 1 IN file('{key}', 'LineAsString')",
    "SELECT count() FROM interactions WHERE toString(id) IN "
    "(SELECT * FROM file('{key}', 'LineAsString'))",
    "SELECT * FROM merge(currentDatabase(), '^interactions$') LIMIT 1",
    "WITH (SELECT file('{key}')) AS k SELECT k",
])
def test_no_function_reads_the_master_key_file(store, store_dsn, template, capsys):
    path = key_file(store_dsn)
    code = query(store_dsn, store.database, template.format(key=path))
    out, err = capsys.readouterr()
    assert path.read_text().strip() not in out + err
    assert code == 2
    assert "query rejected" in err and "table function" in err


def test_into_outfile_writes_nothing(store, store_dsn, tmp_path, capsys):
    target = tmp_path / "out.tsv"
    code = query(store_dsn, store.database, f"SELECT 42 INTO OUTFILE '{target}'")
    assert not target.exists()
    assert code == 2
    assert "INTO OUTFILE" in capsys.readouterr().err


@pytest.mark.parametrize("sql, why", [
    ("SELECT 1 SETTINGS readonly = 0", "Cannot modify 'readonly' setting in readonly mode"),
    ("SELECT * FROM (SELECT 1 SETTINGS max_threads = 1)", "SETTINGS"),
    ("SELECT 1 FORMAT CSV", "FORMAT"),
    ("INSERT INTO interactions (tenant_id) VALUES ('x')", "InsertQuery"),
    ("SELECT 1; SELECT 2", "Multi-statements"),
    ("SELEC 1", "not one valid statement: Syntax error"),
    ("  ;  ", "empty"),
    ("SHOW CREATE TABLE interactions", "ShowCreateTableQuery"),
    ("EXPLAIN PIPELINE SELECT 1", "only EXPLAIN AST"),
    ("EXPLAIN AST SELECT * FROM file('x')", "table functions"),
    ("EXPLAIN AST INSERT INTO interactions (tenant_id) VALUES ('x')",
     "InsertQuery|one statement"),
])
def test_what_else_is_refused(reader, sql, why):
    with pytest.raises(QueryRejected, match=why):
        run_read_only(reader, sql)


def test_one_read_statement_runs_as_parsed(reader):
    result = run_read_only(reader, "WITH {n:UInt8} AS x SELECT x, $$a;b$$ AS s;", {"n": "7"})
    assert result.result_rows == [(7, "a;b")]
    assert run_read_only(reader, "SELECT count() FROM llm_interaction_audit").result_rows == \
        [(0,)]
    assert ("interactions",) in run_read_only(reader, "SHOW TABLES").result_rows
    described = run_read_only(reader, "DESCRIBE TABLE interactions").result_rows
    assert "tenant_id" in {r[0] for r in described}
    assert run_read_only(reader, "EXISTS TABLE interactions").result_rows == [(1,)]
    explained = run_read_only(reader, "EXPLAIN AST SELECT 1").result_rows
    assert explained[0][0].startswith("SelectWithUnionQuery")


def test_read_only_is_a_session_setting_the_engine_enforces(store_dsn):
    """Past the parser, the engine still refuses writes: readonly=1 is set on the connection
    before any user text runs, not appended to the text."""
    database = f"ro_{uuid.uuid4().hex[:12]}"
    admin = Store.open(store_dsn, database)
    admin.command("CREATE TABLE canary (x UInt8) ENGINE = MergeTree ORDER BY x")
    admin.command("INSERT INTO canary VALUES (1)")
    reader = Store.open(store_dsn, database)
    try:
        reader.make_read_only()
        assert reader.scalar("SELECT getSetting('readonly')") == 1
        for statement in ("TRUNCATE TABLE canary", "INSERT INTO canary VALUES (2)",
                          "DROP TABLE canary", "SET readonly = 0",
                          "CREATE TEMPORARY TABLE t (x UInt8) ENGINE = Memory"):
            with pytest.raises(StoreError, match="READONLY"):
                reader.command(statement)
        assert admin.scalar("SELECT count() FROM canary") == 1
    finally:
        reader.close()
        admin.command(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()


def test_readonly_alone_does_not_keep_files_out(reader, store_dsn, tmp_path):
    """Why the AST is checked too: on a readonly=1 connection chDB 26.9 still reads files
    with the scalar file() and with `IN file(...)` (quoted in its error), still runs
    merge(), and still writes INTO OUTFILE."""
    path = key_file(store_dsn)
    secret = path.read_text().strip()
    reader.make_read_only()
    assert secret in reader.scalar("SELECT file({p:String})", {"p": str(path)})
    with pytest.raises(StoreError) as leaked:
        reader.scalar("SELECT 1 IN file({p:String}, 'LineAsString')", {"p": str(path)})
    assert secret in str(leaked.value)
    assert reader.scalar("SELECT count() FROM merge(currentDatabase(), '^interactions$')") == 0
    target = tmp_path / "written"
    reader.query(f"SELECT 'written by a read-only SELECT' INTO OUTFILE '{target}'")
    assert b"written by a read-only SELECT" in target.read_bytes()
