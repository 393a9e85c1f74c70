"""The producer matrix: each Python GenAI instrumentation, real package and real client, one
row per LLM call with the right tokens, cost, content, tenant, user, streaming and reasons.

Each case runs ``producer_app.py`` in its own process under ``opentelemetry-instrument`` with
the genai-audit distro (the one flag the README promises), against the loopback stubs:
``StubLLM`` (OpenAI chat completions) and ``StubAnthropic`` (Messages API, streaming SSE,
prompt-cache tokens). Every case makes two calls, one plain and one streamed, under
``audit_context(tenant acme, user alice)``, with an e-mail address in the prompt.

Producers whose ``openai`` entry point clashes with the Traceloop one the project depends on
(openai-v2, OpenInference) are installed once, ``--no-deps``, into ``.interop-venvs/`` (a
directory put first on the app's path; kept between runs, keyed by the requirements file).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from genai_audit.demo.stub_anthropic import StubAnthropic
from genai_audit.demo.stub_llm import StubLLM
from genai_audit.processor.pricing import load_price_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXTRA_REQUIREMENTS = HERE / "requirements-openai-extra.txt"
LEGACY_REQUIREMENTS = HERE / "requirements-openai-legacy.txt"
EMAIL = "jane.doe@example.com"
PROMPT_WORDS = "about order 4412"  # the end of the app's user prompt (producer_app.py)
# what the stubs report for the app's calls (producer_app.py): system prompt 15 words,
# user prompt 6, answer 7
OPENAI_USAGE = (21, 7, 0, 0)  # input (all of it), output, cache read, cache write
ANTHROPIC_USAGE = (21, 7, 0, 15)  # the system prompt is written to the prompt cache


@dataclass(frozen=True)
class Case:
    name: str
    instrument: tuple[str, ...]
    api: str  # openai | anthropic
    producers: tuple[str, ...]  # instrumentation scopes expected on each row
    extra: bool = False  # needs .interop-venvs/openai-extra
    site: str = "extra_site"  # which installed set, when ``extra``
    auto: bool = False  # let the distro load every installed instrumentation
    env: dict[str, str] = field(default_factory=dict)
    stream_marked: bool = True  # does the producer mark the streamed call as streaming?
    stream_output: int | None = None  # the producer's output count on a stream, if off
    reasons: frozenset[tuple[str, ...]] = frozenset({("stop",)})


CASES = [
    Case("traceloop-openai", ("traceloop-openai",), "openai",
         ("opentelemetry.instrumentation.openai.v1",)),
    # openai-v2 sets no attribute that says a call streamed
    Case("openai-v2", ("openai-v2",), "openai", ("opentelemetry.util.genai.handler",),
         extra=True, stream_marked=False),
    # openai-v2's content as log events, joined to its span by the distro's log processor:
    # latest experimental conventions, EVENT_ONLY (one
    # gen_ai.client.inference.operation.details event per call, no content on the span) ...
    Case("openai-v2-events-only", ("openai-v2",), "openai",
         ("opentelemetry.util.genai.handler",), extra=True, stream_marked=False,
         env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"}),
    # ... content on the span and in the event: one row, the content once
    Case("openai-v2-span-and-event", ("openai-v2",), "openai",
         ("opentelemetry.util.genai.handler",), extra=True, stream_marked=False,
         env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_AND_EVENT"}),
    # ... and the legacy conventions (one event per message and choice), from 2.3b0, the
    # last release before 2.4b0 dropped them
    Case("openai-v2-events-legacy", ("openai-v2",), "openai",
         ("opentelemetry.instrumentation.openai_v2",), extra=True, site="legacy_site",
         stream_marked=False,
         env={"OTEL_SEMCONV_STABILITY_OPT_IN": "",
              "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}),
    Case("openinference-openai", ("openinference-openai",), "openai",
         ("openinference.instrumentation.openai",), extra=True),
    Case("openai-v2+traceloop-openai", ("openai-v2", "traceloop-openai"), "openai",
         ("opentelemetry.instrumentation.openai.v1", "opentelemetry.util.genai.handler"),
         extra=True),
    # Traceloop anthropic does not mark messages.stream() as streaming and adds
    # message_start's output count (1) to the final one
    Case("traceloop-anthropic", ("traceloop-anthropic",), "anthropic",
         ("opentelemetry.instrumentation.anthropic",),
         env={"ANTHROPIC_OPEN_TELEMETRY": "false"}, stream_marked=False, stream_output=8),
    Case("anthropic-sdk", (), "anthropic", ("com.anthropic.sdk.python",),
         reasons=frozenset({("end_turn",)}),
         env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "anthropic"}),
    # as a user gets it: the distro loads Traceloop anthropic, the SDK traces itself
    Case("anthropic-sdk+traceloop-anthropic", (), "anthropic",
         ("com.anthropic.sdk.python", "opentelemetry.instrumentation.anthropic"), auto=True,
         reasons=frozenset({("stop",), ("end_turn",)})),  # each producer's own word
]


@pytest.fixture(scope="module")
def stubs() -> Any:
    with StubLLM() as openai_stub, StubAnthropic() as anthropic_stub:
        yield {"openai": openai_stub.base_url, "anthropic": anthropic_stub.base_url}


def _site(requirements: Path, name: str) -> Path:
    """Producers installed ``--no-deps`` once per requirements file (cached)."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    target = ROOT / ".interop-venvs" / f"{name}-{digest}"
    if not (target / ".complete").exists():
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                               "--target", str(target), "-r", str(requirements)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (target / ".complete").write_text("ok")
    return target


@pytest.fixture(scope="module")
def extra_site() -> Path:
    """The clashing producers."""
    return _site(EXTRA_REQUIREMENTS, "openai-extra")


@pytest.fixture(scope="module")
def legacy_site() -> Path:
    """openai-v2 2.3b0, the last with the legacy conventions' events."""
    return _site(LEGACY_REQUIREMENTS, "openai-legacy")


def _run(case: Case, stubs: dict[str, str], tmp_path: Path, extra: Path | None
         ) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ANTHROPIC_"))}
    env.update({
        "STUB_OPENAI": stubs["openai"], "STUB_ANTHROPIC": stubs["anthropic"],
        "GENAI_AUDIT_DSN": str(tmp_path / "data"), "OTEL_PYTHON_DISTRO": "genai_audit",
        "OTEL_TRACES_EXPORTER": "genai_audit", "OTEL_SERVICE_NAME": "interop",
        # content on: openai-v2 in span content mode, the anthropic SDK in content mode
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE": "content",
    })
    if not case.auto:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "openai,anthropic"
    env.update(case.env)
    if extra is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra), env.get("PYTHONPATH")]))
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    out = tmp_path / "rows.json"
    spec = json.dumps({"instrument": list(case.instrument), "apis": [case.api]})
    proc = subprocess.run([str(launcher), sys.executable, str(HERE / "producer_app.py"), spec,
                           str(out)], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_producer(case: Case, stubs, tmp_path, request) -> None:
    extra = request.getfixturevalue(case.site) if case.extra else None
    rows = _run(case, stubs, tmp_path, extra)
    assert len(rows) == 2, [(r["producers"], r["request_id"]) for r in rows]  # rows = calls
    prices = load_price_table()
    usage = OPENAI_USAGE if case.api == "openai" else ANTHROPIC_USAGE
    model = "gpt-4o-mini" if case.api == "openai" else "claude-haiku-4-5"
    for row, streamed in zip(rows, (False, True), strict=True):
        output = case.stream_output if streamed and case.stream_output else usage[1]
        got = (row["prompt_tokens"], row["response_tokens"], row["cached_tokens"],
               row["cache_write_tokens"])
        assert got == (usage[0], output, usage[2], usage[3]), (case.name, streamed)
        assert Decimal(row["total_cost"]) == prices.cost(
            model, usage[0], output, usage[2], cache_write_tokens=usage[3]) > 0
        assert (row["model"], row["provider"]) == (model, case.api)
        assert "unknown_model" not in row["flags"] and "missing_usage" not in row["flags"]
        assert (row["tenant_id"], row["tool_name"]) == ("acme", "interop")
        assert row["gdpr_pseudonymized_user_key"] and "alice" not in json.dumps(row)
        # content present, redacted, encrypted at rest
        assert row["content_state"] == "encrypted" and EMAIL not in json.dumps(row)
        prompt, response = row["plain_full_prompt_text"], row["plain_full_response_text"]
        assert "<EMAIL_ADDRESS" in prompt and EMAIL not in prompt, prompt
        assert prompt.count(PROMPT_WORDS) == 1, prompt  # the user message once, not twice
        assert "Example" in prompt or "<ORGANIZATION" in prompt  # the system prompt is kept
        assert "Noted:" in response and EMAIL not in response, response
        assert '"role":"system"' in prompt  # system instructions keep their role
        assert row["is_streaming"] is (streamed and case.stream_marked), (case.name, streamed)
        assert tuple(row["finish_reasons"]) in case.reasons, row["finish_reasons"]
        assert tuple(row["producers"]) == case.producers
        merged = len(case.producers) > 1
        assert ("merged_spans" in row["flags"]) is merged
        assert len(row["merged_span_ids"]) == (1 if merged else 0)
