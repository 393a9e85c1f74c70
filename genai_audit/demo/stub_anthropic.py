"""An Anthropic Messages API stub on loopback (``POST /v1/messages``), for tests and benches.

Deterministic, like ``stub_llm`` (its OpenAI sibling), so tests can check every stored number:

* the answer is ``"Noted: " + <last user message>``;
* ``input_tokens`` is the number of whitespace-separated words of the messages; the system
  prompt's words are cache tokens: written to the cache (``cache_creation_input_tokens``)
  when a system block carries ``cache_control``, else counted as input; a model named
  ``...-cached`` reads them from the cache instead (``cache_read_input_tokens``);
* ``output_tokens`` is the number of words of the answer; ``stop_reason`` is ``end_turn``;
* ``stream: true`` sends the Messages streaming events (``message_start``,
  ``content_block_delta`` per word, ``message_delta`` with the usage, ``message_stop``);
* every response has a fresh id (``msg_stub_<n>``) and a ``request-id`` header.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from genai_audit.demo.stub_llm import answer_for, count_words, message_text

_IDS = itertools.count(1)


def anthropic_usage(body: dict[str, Any], answer: str) -> dict[str, int]:
    """The usage the stub reports for a request ``body`` and its ``answer``."""
    system = body.get("system") or ""
    blocks = system if isinstance(system, list) else [{"type": "text", "text": system}]
    system_words = sum(count_words(str(b.get("text", ""))) for b in blocks if isinstance(b, dict))
    cached = any(isinstance(b, dict) and b.get("cache_control") for b in blocks)
    words = sum(count_words(message_text(m)) for m in body.get("messages") or [])
    read = str(body.get("model", "")).endswith("-cached")
    return {
        "input_tokens": words + (0 if cached or read else system_words),
        "output_tokens": count_words(answer),
        "cache_creation_input_tokens": system_words if cached and not read else 0,
        "cache_read_input_tokens": system_words if read else 0,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "stub-anthropic/1"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": "invalid JSON"}})
            return
        if not self.path.rstrip("/").endswith("/messages"):
            self._json(404, {"type": "error", "error": {"type": "not_found_error",
                                                        "message": "not found"}})
            return
        model = str(body.get("model", ""))
        answer = answer_for(body.get("messages") or [])
        usage = anthropic_usage(body, answer)
        message_id = f"msg_stub_{next(_IDS):08d}"
        if body.get("stream"):
            self._stream(message_id, model, answer, usage)
            return
        self._json(200, {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": usage,
        })

    def _headers(self, status: int, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("request-id", f"req_stub_{next(_IDS):08d}")

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self._headers(status, "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, mid: str, model: str, answer: str, usage: dict[str, int]) -> None:
        self._headers(200, "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        start_usage = {**usage, "output_tokens": 1}
        self._event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        self._event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})
        for i, word in enumerate(answer.split(" ")):
            self._event("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": word if i == 0 else " " + word}})
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]}})
        self._event("message_stop", {"type": "message_stop"})
        self.wfile.flush()
        self.close_connection = True

    def _event(self, name: str, payload: dict[str, Any]) -> None:
        self.wfile.write(f"event: {name}\ndata: ".encode() + json.dumps(payload).encode()
                         + b"\n\n")


class StubAnthropic:
    """The stub on 127.0.0.1: ``with StubAnthropic() as stub: Anthropic(base_url=stub.base_url)``"""

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="stub-anthropic", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StubAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
