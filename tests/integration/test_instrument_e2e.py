"""A real app under `opentelemetry-instrument` (subprocess) lands the rows we expect.

The app is plain openai code with `audit_context`; nothing else of genai-audit is imported.
Results are read back through the CLI in another subprocess (chDB: one process per store).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import textwrap
import time
from decimal import Decimal

import pytest

from genai_audit.demo.runner import instrument_command
from genai_audit.demo.stub_llm import answer_for, usage_for
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.commitments import commitment_key
from genai_audit.processor.encryption import open_sealed
from genai_audit.processor.pricing import load_price_table
from genai_audit.processor.render import canonical_json

pytestmark = pytest.mark.integration

APP = textwrap.dedent('''
    import os, openai
    from genai_audit.instrumentation import audit_context
    client = openai.OpenAI(base_url=os.environ["STUB_URL"], api_key="sk-test", max_retries=0)
    CALLS = [
        ("acme", "alice", "hr_helpdesk", "triage", "gpt-4o", "How many vacation days left", False),
        ("acme", "bob", "hr_helpdesk", "policy_qa", "gpt-4o-mini", "Explain the leave policy", True),
        ("globex", "carol", "contract_review", "clauses", "gpt-4.1", "Find the renewal clause", False),
        ("globex", "carol", "contract_review", "clauses", "gpt-4.1-mini", "Summarize the fees", True),
    ]
    for tenant, user, tool, feature, model, prompt, stream in CALLS:
        with audit_context(tenant_id=tenant, user_id=user, tool_name=tool, feature_name=feature):
            messages = [{"role": "user", "content": prompt}]
            if stream:
                for _ in client.chat.completions.create(model=model, messages=messages,
                        stream=True, stream_options={"include_usage": True}):
                    pass
            else:
                client.chat.completions.create(model=model, messages=messages)
    with audit_context(tenant_id="globex", user_id="carol", tool_name="contract_review"):
        try:
            client.chat.completions.create(model="stub-error-503",
                                           messages=[{"role": "user", "content": "x"}])
        except openai.APIStatusError:
            pass
''')

CALLS = [("acme", "alice", "hr_helpdesk", "triage", "gpt-4o", "How many vacation days left", False),
         ("acme", "bob", "hr_helpdesk", "policy_qa", "gpt-4o-mini", "Explain the leave policy", True),
         ("globex", "carol", "contract_review", "clauses", "gpt-4.1", "Find the renewal clause", False),
         ("globex", "carol", "contract_review", "clauses", "gpt-4.1-mini", "Summarize the fees", True)]


def _cli_json(dsn: str, sql: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "genai_audit.cli.main", "query", "--format",
                          "json", "--dsn", dsn, sql],
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_instrumented_app_lands_exact_rows(tmp_path, stub_llm):
    data = tmp_path / "data"
    (tmp_path / "app.py").write_text(APP)
    env = {**os.environ, "STUB_URL": stub_llm.base_url, "GENAI_AUDIT_DSN": str(data),
           "OTEL_TRACES_EXPORTER": "genai_audit", "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none", "OTEL_SERVICE_NAME": "e2e-app",
           "GENAI_AUDIT_SYNC_TOOLS": "contract_review"}
    started = time.monotonic()
    launcher = instrument_command()[0]
    proc = subprocess.run([launcher, sys.executable, "app.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    wall_ms = (time.monotonic() - started) * 1000
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "genai-audit" not in proc.stderr  # no export errors logged

    rows = _cli_json(str(data), "SELECT * FROM interactions ORDER BY event_timestamp")
    assert len(rows) == len(CALLS) + 1
    keys = LocalKeyStore(str(data) + "-keys")
    prices = load_price_table()
    for row, (tenant, user, tool, feature, model, prompt, stream) in zip(rows, CALLS):
        messages = [{"role": "user", "content": prompt}]
        answer = answer_for(messages)
        usage = usage_for(messages, answer)
        subject = keys.find_subject(tenant, user)
        assert subject is not None
        pseudonym = subject.pseudonym
        sent = [{"role": "user", "parts": [{"content": prompt, "type": "text"}]}]
        got = [{"role": "assistant", "parts": [{"content": answer, "type": "text"}],
                "finish_reason": "stop"}]
        commit = commitment_key(subject)
        assert (row["tenant_id"], row["gdpr_pseudonymized_user_key"]) == (tenant, pseudonym)
        assert (row["tool_name"], row["feature_name"], row["model"]) == (tool, feature, model)
        assert (row["prompt_tokens"], row["response_tokens"]) == (
            usage["prompt_tokens"], usage["completion_tokens"])
        assert Decimal(row["total_cost"]) == prices.cost(model, usage["prompt_tokens"],
                                                         usage["completion_tokens"])
        assert row["prompt_hash"] == hmac.new(commit, canonical_json(sent).encode(),
                                              hashlib.sha256).hexdigest()
        assert row["response_hash"] == hmac.new(commit, canonical_json(got).encode(),
                                                hashlib.sha256).hexdigest()
        assert (row["content_state"], row["content_key_id"]) == ("encrypted", subject.key_id)
        assert answer not in json.dumps(row)  # content is ciphertext at rest
        assert open_sealed(subject, row["id"], "response_preview",
                           row["response_preview"]) == answer
        assert 0 < row["latency_ms"] < wall_ms
        assert (row["status_code"], row["is_streaming"], row["flags"]) == (200, stream, [])
        assert (row["service_name"], row["provider"]) == ("e2e-app", "openai")
        assert user not in json.dumps(row)  # the plaintext user id is nowhere in the row
    failed = rows[-1]
    assert (failed["status_code"], failed["error_type"], failed["model"]) == (
        503, "InternalServerError", "stub-error-503")


def test_distro_alone_is_enough(tmp_path, stub_llm):
    """OTEL_PYTHON_DISTRO=genai_audit with no exporter variable audits the call."""
    data = tmp_path / "data"
    (tmp_path / "app.py").write_text(textwrap.dedent('''
        import os, openai
        from genai_audit.instrumentation import audit_context
        client = openai.OpenAI(base_url=os.environ["STUB_URL"], api_key="sk-test")
        with audit_context(tenant_id="solo", user_id="u", tool_name="t"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    '''))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"STUB_URL": stub_llm.base_url, "GENAI_AUDIT_DSN": str(data),
                "OTEL_PYTHON_DISTRO": "genai_audit", "OTEL_PYTHON_CONFIGURATOR": "genai_audit"})
    proc = subprocess.run([instrument_command()[0], sys.executable, "app.py"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _cli_json(str(data), "SELECT tenant_id, tool_name, prompt_tokens FROM interactions")
    assert rows == [{"tenant_id": "solo", "tool_name": "t", "prompt_tokens": 1}]
