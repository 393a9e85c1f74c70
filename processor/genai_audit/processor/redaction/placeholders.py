"""Typed, numbered placeholders: ``<PERSON_1>``, ``<EMAIL_ADDRESS_2>``.

One ``Placeholders`` per interaction: the same value gets the same placeholder in the
prompt, the system instructions, tool calls and the response, so an auditor can follow
"<PERSON_1> asked about <PERSON_1>'s card" without ever seeing the name. The map lives in
memory only (the guard uses it to re-fill the model's answer, then drops it).
"""

from __future__ import annotations

import re

PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)>")
# The longest a placeholder can be; a streamed "<PERS" may be the start of one.
MAX_PLACEHOLDER_CHARS = 48
_PARTIAL_RE = re.compile(r"<[A-Z0-9_]*$")


def _key(value: str) -> str:
    return " ".join(value.split()).casefold()


class Placeholders:
    """Value <-> placeholder for one interaction."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, entity: str, value: str) -> str:
        key = (entity, _key(value))
        found = self._by_value.get(key)
        if found is None:
            number = self._counts.get(entity, 0) + 1
            self._counts[entity] = number
            found = f"<{entity}_{number}>"
            self._by_value[key] = found
            self._by_placeholder[found] = value
        return found

    def reserve(self, text: str) -> None:
        """Number after placeholders already in ``text`` (content the guard redacted before
        the call), so a new ``<PERSON_1>`` never collides with an existing one."""
        if "<" not in text:
            return
        for match in PLACEHOLDER_RE.finditer(text):
            entity, number = match.group(1), int(match.group(2))
            if number > self._counts.get(entity, 0):
                self._counts[entity] = number

    def original(self, placeholder: str) -> str | None:
        return self._by_placeholder.get(placeholder)

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def refill(self, text: str) -> str:
        """Put the original values back where this map's placeholders stand."""
        if not self._by_placeholder or "<" not in text:
            return text
        return PLACEHOLDER_RE.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)),
                                  text)

    def clear(self) -> None:
        self._by_value.clear()
        self._by_placeholder.clear()
        self._counts.clear()


class StreamRefiller:
    """Re-fill placeholders in streamed text whose chunks may split one (``<PER`` + ``SON_1>``).

    ``feed`` returns what can be released now; a trailing fragment that could still grow into
    a placeholder is held back (at most ``MAX_PLACEHOLDER_CHARS``); ``flush`` releases it.
    """

    def __init__(self, placeholders: Placeholders) -> None:
        self.placeholders = placeholders
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        partial = _PARTIAL_RE.search(text)
        if partial is not None and len(text) - partial.start() < MAX_PLACEHOLDER_CHARS:
            self._held, text = text[partial.start():], text[:partial.start()]
        else:
            self._held = ""
        return self.placeholders.refill(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.placeholders.refill(text)
