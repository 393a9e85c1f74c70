"""One interop case: a plain app under ``opentelemetry-instrument`` (the distro, one flag)
making real client calls to the loopback stubs, with the case's instrumentations on.

    opentelemetry-instrument python producer_app.py CASE OUT.json

Environment: STUB_OPENAI, STUB_ANTHROPIC (base URLs), GENAI_AUDIT_DSN. Which instrumentations
run is the case's ``instrument`` list (entry points of the ``opentelemetry_instrumentor``
group are disabled by the test unless the case is ``auto``: the distro loads whatever is
installed, as a user's app would). After its calls the app flushes and writes the rows it
stored, with their content decrypted (the app owns the keys), to OUT.json.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from opentelemetry import trace

from genai_audit.instrumentation import audit_context

PROMPT = "Please email jane.doe@example.com about order 4412"
SYSTEM = "You are a terse support agent for Example Corp and you answer in one line"


def _instrument(names: list[str]) -> None:
    for name in names:
        if name == "traceloop-openai":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor
            OpenAIInstrumentor().instrument()
        elif name == "openai-v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2
            V2().instrument()
        elif name == "openinference-openai":
            from openinference.instrumentation.openai import OpenAIInstrumentor as OI
            OI().instrument()
        elif name == "traceloop-anthropic":
            from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
            AnthropicInstrumentor().instrument()
        else:
            raise SystemExit(f"unknown instrumentation {name}")


def openai_calls() -> None:
    import openai
    client = openai.OpenAI(base_url=os.environ["STUB_OPENAI"], api_key="sk-test", max_retries=0)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, user="end-user-9")
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                            stream_options={"include_usage": True}):
        pass


def anthropic_calls() -> None:
    import anthropic
    client = anthropic.Anthropic(base_url=os.environ["STUB_ANTHROPIC"], api_key="sk-ant-test",
                                 max_retries=0)
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": PROMPT}]
    client.messages.create(model="claude-haiku-4-5", max_tokens=64, system=system,
                           messages=messages)
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, system=system,
                                messages=messages) as stream:
        for _ in stream.text_stream:
            pass


def stored_rows() -> list[dict[str, Any]]:
    provider = trace.get_tracer_provider()
    assert provider.force_flush(60_000)  # type: ignore[attr-defined]
    exporter = _audit_exporter(provider)
    from genai_audit.processor.encryption import open_sealed
    store, keys = exporter.open_store(), exporter._get_keys()
    result = store.client.query("SELECT * FROM interactions ORDER BY event_timestamp")
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    out = []
    for row in rows:
        subject = keys.find_subject(row["tenant_id"], "alice")
        plain = {c: open_sealed(subject, str(row["id"]), c, row[c])
                 for c in ("full_prompt_text", "full_response_text")} if subject else {}
        out.append({k: (v if isinstance(v, int | float | bool | str | list | type(None))
                        else (v.hex() if isinstance(v, bytes) else str(v)))
                    for k, v in {**row, **{"plain_" + k: v for k, v in plain.items()}}.items()})
    return out


def _audit_exporter(provider: Any) -> Any:
    from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
    for processor in provider._active_span_processor._span_processors:
        if isinstance(getattr(processor, "exporter", None), ClickHouseSpanExporter):
            return processor.exporter
    raise SystemExit("no genai-audit exporter configured: is the distro on?")


def main() -> None:
    case, out = json.loads(sys.argv[1]), sys.argv[2]
    _instrument(case["instrument"])
    with audit_context(tenant_id="acme", user_id="alice", tool_name="interop"):
        for api in case["apis"]:
            {"openai": openai_calls, "anthropic": anthropic_calls}[api]()
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(stored_rows(), handle)


if __name__ == "__main__":
    main()
