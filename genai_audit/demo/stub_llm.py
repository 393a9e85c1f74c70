"""An OpenAI-compatible chat-completions stub on loopback, for the demo, tests and benches.

Deterministic so tests can check every stored number against what was sent:

* the answer is ``"Noted: " + <last user message>``, so PII sent in a prompt comes back
  in the response (the redaction of responses is exercised too);
* ``prompt_tokens`` is the number of whitespace-separated words over all messages,
  ``completion_tokens`` the number of words of the answer;
* streaming (``stream=true``) sends the answer word by word as SSE chunks and, with
  ``stream_options.include_usage``, a final usage chunk;
* a model named ``stub-error-<status>`` (for example ``stub-error-429``) answers with
  that HTTP status and an OpenAI-shaped error body.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER_PREFIX = "Noted: "


def count_words(text: str) -> int:
    return len(text.split())


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def answer_for(messages: list[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    return ANSWER_PREFIX + (message_text(users[-1]) if users else "")


def usage_for(messages: list[dict[str, Any]], answer: str) -> dict[str, int]:
    prompt = sum(count_words(message_text(m)) for m in messages)
    completion = count_words(answer)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "stub-llm/1"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the demo prints its own progress

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        model = str(body.get("model", ""))
        if model.startswith("stub-error-"):
            status = int(model.rsplit("-", 1)[1])
            self._json(status, {"error": {"message": f"stub error {status}", "type": "stub_error",
                                          "code": str(status)}})
            return
        messages = body.get("messages") or []
        answer = answer_for(messages)
        usage = usage_for(messages, answer)
        completion_id = f"chatcmpl-stub-{time.time_ns()}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(completion_id, model, answer, usage if include_usage else None)
            return
        self._json(200, {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
            "usage": usage,
        })

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req-stub-{time.time_ns()}")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, cid: str, model: str, answer: str, usage: dict[str, int] | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        words = answer.split(" ")
        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if usage is not None:
            self._event({**base, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")


class StubLLM:
    """The stub on 127.0.0.1 in a background thread: ``with StubLLM() as stub: stub.base_url``"""

    def __init__(self, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-llm",
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> StubLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """``python -m genai_audit.demo.stub_llm [PORT]``: serve the stub until interrupted."""
    import sys

    stub = StubLLM(int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(stub.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
