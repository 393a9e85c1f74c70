"""Harness: run ``genai-audit serve`` as a subprocess with its own store, read results back.

The pytest process already owns the session's embedded store (chDB: one directory per
process), so a gateway that owns a store runs as a subprocess, and its rows are read with
``genai-audit query`` in another subprocess after it stopped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

TOKENS = {"acme": "tok-acme-0123456789", "globex": "tok-globex-0123456789"}
CLI = [sys.executable, "-m", "genai_audit.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """One gateway subprocess; ``start()`` waits for its ready line."""

    def __init__(self, workdir: Path, dsn: str, *, tokens_file: Path | None,
                 extra: list[str] | None = None, spool_dir: Path | None = None) -> None:
        self.workdir, self.dsn = workdir, dsn
        self.grpc_port, self.http_port = free_port(), free_port()
        self.args = [*CLI, "serve", "--dsn", dsn, "--grpc", f"127.0.0.1:{self.grpc_port}",
                     "--http", f"127.0.0.1:{self.http_port}", "--log-level", "info",
                     "--spool-dir", str(spool_dir or workdir / "spool"), *(extra or [])]
        self.args += ["--tokens-file", str(tokens_file)] if tokens_file else \
            ["--allow-unauthenticated"]
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 90) -> Gateway:
        env = {**os.environ, "GENAI_AUDIT_CONFIG": "", "PYTHONUNBUFFERED": "1"}
        env.pop("GENAI_AUDIT_DSN", None)
        self.proc = subprocess.Popen(self.args, cwd=self.workdir, env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                if "gateway ready" in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("gateway did not start:\n" + "".join(self.lines[-30:]))
        return self

    def stop(self) -> int:
        """SIGTERM and wait (graceful: in-flight requests finish, store closed)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL, by pid
            self.proc.wait(timeout=30)

    def metrics(self) -> dict[str, float]:
        import urllib.request
        with urllib.request.urlopen(self.http + "/metrics", timeout=10) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name.replace("genai_audit_gateway_", "")] = float(value)
        return values


def query(dsn: str, sql: str) -> list[dict[str, Any]]:
    env = {**os.environ, "GENAI_AUDIT_CONFIG": ""}
    done = subprocess.run([*CLI, "query", "--dsn", dsn, "--format", "json", sql], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]
