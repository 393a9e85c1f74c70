"""Run the demo: the stub LLM here, the instrumented app in a child process.

The child owns the embedded store while it runs (chDB: one process per data directory);
this process opens the store only after the child has exited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from genai_audit.demo.app import ENV_LLM_URL, SCRIPT
from genai_audit.demo.stub_llm import StubLLM

#: tools whose records are written before the LLM call returns (the article's high-risk tools)
DEMO_SYNC_TOOLS = "contract_review,hr_helpdesk"


class DemoError(RuntimeError):
    """The demo app failed; the message carries its last stderr lines."""


@dataclass(frozen=True)
class DemoRun:
    calls: int
    expected_errors: int


def instrument_command() -> list[str]:
    launcher = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    launcher = launcher or shutil.which("opentelemetry-instrument")
    if launcher is None:
        raise DemoError("opentelemetry-instrument not found: install genai-audit into this "
                        "environment (pip install -e .)")
    return [launcher, sys.executable, "-m", "genai_audit.demo.app"]


def child_env(dsn: str, database: str | None, base_url: str, rounds: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        ENV_LLM_URL: base_url,
        "GENAI_AUDIT_DSN": dsn,
        "GENAI_AUDIT_DEMO_ROUNDS": str(rounds),
        "GENAI_AUDIT_SYNC_TOOLS": env.get("GENAI_AUDIT_SYNC_TOOLS", DEMO_SYNC_TOOLS),
        "OTEL_TRACES_EXPORTER": "genai_audit",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "genai-audit-demo",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "urllib3,requests,httpx,urllib",
    })
    if database:
        env["GENAI_AUDIT_DATABASE"] = database
    return env


def run_demo(dsn: str, database: str | None, rounds: int,
             progress: Callable[[int, int], None]) -> DemoRun:
    """Run the scripted app ``rounds`` times; ``progress(done, total)`` after every call."""
    with StubLLM() as stub:
        proc = subprocess.Popen(instrument_command(),
                                env=child_env(dsn, database, stub.base_url, rounds),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        calls = errors = 0
        for line in proc.stdout:
            parts = line.split()
            if parts[:1] == ["PROGRESS"] and len(parts) == 3:
                progress(int(parts[1]), int(parts[2]))
            elif parts[:1] == ["DONE"] and len(parts) == 3:
                calls, errors = int(parts[1]), int(parts[2])
        stderr = proc.stderr.read()
        code = proc.wait()
    if code != 0 or calls != rounds * len(SCRIPT):
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise DemoError(f"demo app exited with {code} after {calls} calls:\n{tail}")
    return DemoRun(calls=calls, expected_errors=errors)
