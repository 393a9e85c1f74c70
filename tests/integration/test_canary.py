"""Canary: run the demo (real openai client, `opentelemetry-instrument`, known PII and PHI in
prompts and user ids), then look for that PII everywhere it could have leaked: every column
of every table (SQL), every byte of every file under the data directory and the keystore,
and the process output. Encryption alone must keep it out (redaction only adds to this).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genai_audit.demo.app import SCRIPT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# PII / PHI the demo's prompts carry (the stub echoes each prompt into its answer).
CANARIES = ["Maria Gonzalez", "00482913", "03/14/1961", "(415) 555-0132", "John Carter",
            "alan.smithee@supplier.example", "Alan Smithee", "DE89 3704 0044 0532 0130 00",
            "123-45-6789", "4111 1111 1111 1111", "chest pain", "parental leave policy"]
USER_IDS = sorted({c.user for c in SCRIPT if c.user})

DUMP = textwrap.dedent("""
    import json, sys
    from genai_audit.clickhouse.store import Store
    store = Store.open(sys.argv[1])
    out = {}
    for (table,) in store.rows("SELECT name FROM system.tables WHERE database = currentDatabase()"):
        result = store.query(f"SELECT * FROM `{table}`")
        out[table] = [[repr(v) for v in row] for row in result.result_rows]
    print(json.dumps(out))
""")


def _variants(text: str) -> list[bytes]:
    return [text.encode("utf-8"), text.encode("utf-16-le"), json.dumps(text).encode()]


def _files(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in root.rglob("*") if p.is_file()}


def test_no_plaintext_pii_anywhere_after_the_demo(tmp_path):
    for canary in CANARIES:  # the canaries really are in what the demo sends
        assert any(canary in c.prompt for c in SCRIPT), canary
    assert len(USER_IDS) >= 5
    data = tmp_path / "data"
    demo = subprocess.run([sys.executable, "-m", "genai_audit.cli.main", "demo", "--dsn",
                           str(data)], capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr[-2000:]
    dump = subprocess.run([sys.executable, "-c", DUMP, str(data)], capture_output=True,
                          text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr[-2000:]
    tables = json.loads(dump.stdout)
    assert len(tables["interactions"]) == len(SCRIPT)
    assert {"subject_erasures", "access_log", "schema_migrations"} <= set(tables)
    sql_text = dump.stdout
    files = _files(data, Path(str(data) + "-keys"))
    assert any(p.name == "keystore.db" for p in files)
    logs = demo.stdout + demo.stderr + dump.stderr

    # Positive controls: the scans do see what is stored in clear.
    assert "acme-health" in sql_text and "demo-session" in sql_text
    assert any(b"demo-session" in blob for blob in files.values())
    assert "acme-health" in logs  # the demo's summary table

    leaks = []
    for secret in CANARIES + USER_IDS:
        if secret in sql_text or json.dumps(secret)[1:-1] in sql_text:
            leaks.append(f"{secret!r} in SQL results")
        if secret in logs:
            leaks.append(f"{secret!r} in process output")
        for path, blob in files.items():
            if any(v in blob for v in _variants(secret)):
                leaks.append(f"{secret!r} in {path.relative_to(tmp_path)}")
    assert leaks == []


def test_debug_logs_of_failing_and_succeeding_paths_carry_no_pii(store, keystore, make_span,
                                                                 caplog):
    """In process, logging at DEBUG: a keystore that fails, an erasure in flight, a read."""
    import logging

    from genai_audit.clickhouse.disclosure import disclose
    from genai_audit.clickhouse.erasure import erase_subject
    from genai_audit.config import Settings
    from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
    from genai_audit.processor.factory import default_pipeline

    caplog.set_level(logging.DEBUG)
    prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": CANARIES[0]}]}])
    spans = [make_span(**{"enduser.id": user, "gen_ai.input.messages": prompt})
             for user in USER_IDS]
    settings = Settings.load(env={})
    exporter = ClickHouseSpanExporter(settings, store=store,
                                      pipeline=default_pipeline(settings, keystore))
    exporter.export(spans[:2])
    erase_subject(store, keystore, tenant_id="acme", user_id=USER_IDS[0], reason="objection",
                  operator="dpo")
    exporter.export(spans)  # the erased subject's record again: its key is gone
    ids = [r[0] for r in store.rows("SELECT toString(id) FROM interactions")]
    disclose(store, keystore, ids, actor="auditor", purpose="canary")
    text = caplog.text + json.dumps(store.rows("SELECT * FROM interactions"), default=str)
    assert "acme" in text  # the capture works
    assert [s for s in CANARIES[:1] + USER_IDS if s in text] == []
    exporter.shutdown()  # stops the ledger's checkpoint ticker before the database goes
