"""Field values made inert for the output they are printed in: terminal, CSV, JSON, Markdown, HTML.

Most of what the store holds was chosen by whoever sent the span: tool and model names,
tenant and service ids, prompt text. Printed as is, such a value can act instead of being
read: ``=HYPERLINK(...)`` runs as a formula in a spreadsheet opening the CSV, an ANSI escape
rewrites the auditor's terminal, ``<script>`` runs in a rendered Markdown or HTML report, a
right-to-left override reverses what a line appears to say. Every renderer passes the values
it prints through one of these pure functions (and only these: no copies in the renderers).

* ``visible``: control characters (C0 but tab and newline, DEL, C1), bidirectional
  overrides and isolates, line/paragraph separators and the BOM are written out as ``\\x1b``,
  ``\\u202e``..., so they are seen, not obeyed (terminal: ``query``'s table, ``show``).
* ``csv_cell``: ``visible``, then a text cell starting with ``= + - @`` (or tab/CR) gets a
  leading ``'`` (OWASP's advice against CSV injection); numbers are left alone.
* ``json_text``: ``json.dumps``, with the characters ``visible`` names escaped as ``\\uXXXX``
  (JSON escapes C0 itself); the parsed values are unchanged.
* ``markdown_text``: ``visible``, line breaks as spaces, and Markdown/HTML punctuation
  backslash-escaped outside `code` spans (a renderer shows it, never interprets it).
* ``html_text``: ``visible``, then HTML-escaped (quotes included).
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

_BEYOND_ASCII = ("\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                 "\ufeff")
_INVISIBLE = re.compile(f"[\x00-\x1f{_BEYOND_ASCII}]")
_INVISIBLE_IN_JSON = re.compile(f"[{_BEYOND_ASCII}]")  # json.dumps escapes C0 in strings
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>|&!~#])")
_CODE_SPAN = re.compile(r"(`[^`]+`)")


def _written_out(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, keep: str = "\t\n") -> str:
    """``text`` with every control or direction-changing character written out (``\\x1b``),
    except those in ``keep``."""
    return _INVISIBLE.sub(lambda m: m.group() if m.group() in keep else _written_out(m), text)


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: strings made visible and, when they
    start like a formula, prefixed with ``'``. Other values are returned unchanged."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def json_text(value: Any, **dumps: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, **dumps)`` with invisible characters escaped."""
    text = json.dumps(value, ensure_ascii=False, **dumps)
    # outside strings these characters cannot occur, inside a string \\uXXXX means the same
    # character (C0 left in the text is the indentation's whitespace: json.dumps escaped
    # the C0 inside strings)
    return _INVISIBLE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def markdown_text(text: str) -> str:
    """Inline Markdown showing ``text`` literally: one line, punctuation that Markdown or
    HTML would act on backslash-escaped; `code` spans (how notes name commands) are kept."""
    parts = _CODE_SPAN.split(visible(text.replace("\r\n", " ").replace("\n", " "), keep=""))
    return "".join(part.replace("|", "\\|") if i % 2 else _MARKDOWN_ACTIVE.sub(r"\\\1", part)
                   for i, part in enumerate(parts))


def html_text(text: str) -> str:
    """``text`` as HTML character data or an attribute value."""
    return html.escape(visible(text), quote=True)
