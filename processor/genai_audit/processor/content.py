"""Message content of one interaction: the GenAI messages JSON, parsed leniently and late.

Messages follow the OTel GenAI JSON shape
(``[{"role": ..., "parts": [{"type": "text", "content": ...}, ...]}]``); stages that rewrite
text (redaction) walk them with ``text_slots``.

``normalize`` hands over the instrumentation's JSON text as it is (``Content.from_json``);
it is parsed the first time a stage reads the messages: redaction, or else render, which
serializes them and drops the parsed objects. Parsed that late, one record's message
objects live from parse to render only, instead of a whole batch of them living from
normalize to render: those survivors were most of the garbage collector's work on the
ingest path (``docs/architecture.md``, "Throughput").

Bad JSON never raises: it is kept as one text part and flagged on the record
(``MALFORMED_*_MESSAGES``) when parsed; lone surrogates smuggled in as JSON escapes are
replaced and flagged ``INVALID_UTF8``. Content dropped unread (capture off, a stage withheld
it) is never parsed and so raises no malformed flag: the flag is about content kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from genai_audit.processor.flags import Flag

Messages = Sequence[dict[str, Any]]

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE_RE = re.compile(r"\\u[dD][89a-fA-F]")
_RAW_DECODE = json.JSONDecoder().raw_decode


class Content:
    """The messages of one call: parsed (``Content(...)``) or JSON text parsed on first
    read (``Content.from_json``). Read-only from outside: stages replace a record's
    content rather than assign into it, so ``NO_CONTENT`` can be shared."""

    __slots__ = (
        "_flags",
        "_input",
        "_input_json",
        "_output",
        "_output_json",
        "_system",
        "_system_json",
    )

    def __init__(self, input_messages: Messages = (), output_messages: Messages = (),
                 system_instructions: Messages = ()) -> None:
        # A messages slot is None while its JSON text waits to be parsed.
        self._input: Messages | None = input_messages
        self._output: Messages | None = output_messages
        self._system: Messages | None = system_instructions
        self._input_json = self._output_json = self._system_json = ""
        self._flags: set[Flag] | None = None  # the record's, where parsing flags problems

    @classmethod
    def from_json(cls, input_json: str | None, output_json: str | None,
                  system_json: str | None, flags: set[Flag]) -> Content:
        """Content from the instrumentation's JSON strings (None or "": no messages);
        problems found when parsing are flagged in ``flags`` (the record's)."""
        content = cls()
        content._flags = flags
        if input_json:
            content._input, content._input_json = None, input_json
        if output_json:
            content._output, content._output_json = None, output_json
        if system_json:
            content._system, content._system_json = None, system_json
        return content

    @property
    def input_messages(self) -> Messages:
        if self._input is None:
            self._input = self._parse(self._input_json, "user", Flag.MALFORMED_INPUT_MESSAGES)
            self._input_json = ""
        return self._input

    @property
    def output_messages(self) -> Messages:
        if self._output is None:
            self._output = self._parse(self._output_json, "assistant",
                                       Flag.MALFORMED_OUTPUT_MESSAGES)
            self._output_json = ""
        return self._output

    @property
    def system_instructions(self) -> Messages:
        if self._system is None:
            self._system = system_messages(self._parse(self._system_json, "system",
                                                       Flag.MALFORMED_INPUT_MESSAGES))
            self._system_json = ""
        return self._system

    def _parse(self, raw: str, role: str, bad: Flag) -> list[dict[str, Any]]:
        assert self._flags is not None  # only ``from_json`` content has text to parse
        return parse_messages(raw, role, bad, self._flags)

    def size(self) -> tuple[int, int]:
        """(messages, characters of their text parts): what the merge compares to keep the
        richest content of one call. Parses the JSON (as redaction would anyway)."""
        count = chars = 0
        for messages in (self.input_messages, self.output_messages, self.system_instructions):
            for message in messages:
                count += 1
                parts = message.get("parts")
                for part in parts if isinstance(parts, list) else ():
                    if isinstance(part, dict):
                        chars += len(str(part.get("content", "")))
        return count, chars

    def is_empty(self) -> bool:
        return not (self.input_messages or self.output_messages or self.system_instructions)

    def __repr__(self) -> str:  # never the text: a repr ends up in logs
        def count(messages: Messages | None) -> str:
            return "unparsed" if messages is None else str(len(messages))
        return (f"Content(input={count(self._input)}, output={count(self._output)}, "
                f"system={count(self._system)})")


NO_CONTENT = Content()  # what a record holds once its content is rendered or dropped


def parse_messages(raw: str, default_role: str, bad: Flag, flags: set[Flag]) -> list[
        dict[str, Any]]:
    """Parse a GenAI messages JSON string; keep unparseable content as one text part."""
    try:
        parsed = _loads(raw)
    except (json.JSONDecodeError, RecursionError):
        flags.add(bad)
        return [text_message(default_role, raw)]
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(isinstance(m, dict) for m in parsed):
        flags.add(bad)
        return [text_message(default_role, raw)]
    if "\\u" in raw and _ESCAPED_SURROGATE_RE.search(raw):
        return [_clean_tree(m, flags) for m in parsed]
    return parsed


def system_messages(parsed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``gen_ai.system_instructions`` is a list of *parts* in the current conventions
    (``[{"type": "text", "content": ...}]``), a list of messages in older producers': parts
    become one ``system`` message (else they would be stored as role-less messages)."""
    if parsed and all("role" not in p and "parts" not in p and "type" in p for p in parsed):
        return [{"role": "system", "parts": parsed}]
    return parsed


def text_message(role: str, content: str, finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": content}]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return message


def message_from_text(role: str, content: str, finish_reason: str | None = None
                      ) -> dict[str, Any]:
    """An indexed message: its content as one text part, or, when the content is a JSON
    array of typed parts (``[{"type": "text", "text": "..."}]``, how Traceloop writes
    list-valued content such as Anthropic system blocks), those parts, text parts in the
    GenAI shape (``{"type": "text", "content": ...}``)."""
    if content.startswith("[{") and '"type"' in content:
        try:
            parsed = _loads(content)
        except (json.JSONDecodeError, RecursionError):
            parsed = None
        if isinstance(parsed, list) and parsed and all(
                isinstance(p, dict) and isinstance(p.get("type"), str) for p in parsed):
            parts = [{"type": "text", "content": str(p.get("text", p.get("content", "")))}
                     if p["type"] == "text" else p for p in parsed]
            message: dict[str, Any] = {"role": role, "parts": parts}
            if finish_reason:
                message["finish_reason"] = finish_reason
            return message
    return text_message(role, content, finish_reason)


def clean_text(value: str, flags: set[Flag]) -> str:
    """Replace lone surrogates (invalid UTF-8 smuggled through ``surrogateescape``) and NULs."""
    if value.isascii():
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        flags.add(Flag.INVALID_UTF8)
        value = _SURROGATE_RE.sub("\ufffd", value)
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _loads(raw: str) -> Any:
    """``json.loads`` of a str, minus its wrapper's two whitespace scans in the usual case
    (no whitespace around the value); anything else is left to ``json.loads`` itself."""
    try:
        value, end = _RAW_DECODE(raw)
    except json.JSONDecodeError:
        return json.loads(raw)  # leading whitespace, or invalid: json.loads decides
    if end != len(raw) and raw[end:].strip(" \t\n\r"):
        return json.loads(raw)  # trailing data: raises as json.loads does
    return value


def _clean_tree(value: Any, flags: set[Flag]) -> Any:
    """JSON escapes (``\\udcff``) can smuggle lone surrogates past the attribute check."""
    if isinstance(value, str):
        return clean_text(value, flags)
    if isinstance(value, list):
        return [_clean_tree(v, flags) for v in value]
    if isinstance(value, dict):
        return {clean_text(str(k), flags): _clean_tree(v, flags) for k, v in value.items()}
    return value
