"""Render content for storage: canonical JSON of the messages and a 500-character preview.

Runs after redaction, so what it serializes is what may be stored. Later stages work on
the serialized text only. A record without finish reasons takes those of its output
messages (openai-v2 gives a stream's only there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from genai_audit.processor.record import NO_CONTENT, AuditRecord, ContentState, Flag

PREVIEW_CHARS = 500


_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def message_text(messages: Sequence[dict[str, Any]]) -> str:
    """The text parts of messages, joined: what a human reads as the response."""
    texts: list[str] = []
    for message in messages:
        for part in message.get("parts") or []:
            if isinstance(part, dict) and part.get("type", "text") == "text":
                texts.append(str(part.get("content", "")))
        if isinstance(message.get("content"), str):
            texts.append(message["content"])
    return "\n".join(texts)


class RenderStage:
    """Serialize content; with ``capture_content=False`` drop it (metadata-only records)."""

    name = "render"
    failure_flag = Flag.CONTENT_WITHHELD

    def __init__(self, capture_content: bool = True) -> None:
        self.capture_content = capture_content

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            if record.content_state is ContentState.WITHHELD:
                continue
            content = record.content
            if not self.capture_content:
                record.content = NO_CONTENT
                record.content_state = ContentState.NOT_CAPTURED
                continue
            if content.is_empty():
                record.content_state = ContentState.NOT_CAPTURED
                record.flag(Flag.CONTENT_NOT_CAPTURED)
                continue
            prompt = [*content.system_instructions, *content.input_messages]
            record.prompt_text = canonical_json(prompt)
            record.response_text = canonical_json(content.output_messages)
            record.response_preview = message_text(content.output_messages)[:PREVIEW_CHARS]
            if not record.finish_reasons:  # a producer that gives them only per message
                record.finish_reasons = tuple(
                    m["finish_reason"] for m in content.output_messages
                    if isinstance(m.get("finish_reason"), str) and m["finish_reason"])
            # The text is what goes on; dropping the parsed messages now (not after the
            # batch's insert) keeps them from outliving a garbage collection or two.
            record.content = NO_CONTENT
