"""``redact(text, *, engine, policy) -> Redaction``: the pure function at the centre.

Findings from the engine are filtered by the policy (entity types, per-type thresholds,
allow-list), overlapping findings are merged into one span (a union, so no character of
either leaks; a pattern's finding names the type before the model's, then the stronger
one), and each span is rewritten by the
policy's operator for its type. Offsets in ``Redaction.entities`` refer to the input text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from genai_audit.processor.redaction.operators import OperatorContext, get_operator
from genai_audit.processor.redaction.placeholders import PLACEHOLDER_RE, Placeholders
from genai_audit.processor.redaction.policy import RedactionPolicy
from genai_audit.processor.redaction.recognizers import Finding


class Analyzer(Protocol):
    def analyze(self, text: str, languages: Sequence[str] = ...) -> list[Finding]: ...


@dataclass(frozen=True)
class Redaction:
    text: str
    entities: tuple[Finding, ...]
    counts: dict[str, int] = field(default_factory=dict)


def _no_secret() -> bytes:
    raise RuntimeError("the hmac operator needs a tenant secret (pass secret=...)")


def redact(text: str, *, engine: Analyzer, policy: RedactionPolicy,
           placeholders: Placeholders | None = None,
           secret: Callable[[], bytes] = _no_secret) -> Redaction:
    """Redact one text. Pass one ``placeholders`` for every text of an interaction so the
    same value gets the same ``<TYPE_N>`` everywhere."""
    if not policy.enabled or not text:
        return Redaction(text, ())
    shared = placeholders if placeholders is not None else Placeholders()
    shared.reserve(text)  # number after placeholders already in the text
    return apply_findings(text, engine.analyze(text, policy.languages), policy,
                          OperatorContext(shared, secret))


def apply_findings(text: str, findings: Sequence[Finding], policy: RedactionPolicy,
                   ctx: OperatorContext) -> Redaction:
    spans = select(text, findings, policy)
    if not spans:
        return Redaction(text, ())
    out: list[str] = []
    last = 0
    for span in spans:
        out.append(text[last:span.start])
        out.append(get_operator(policy.operator_for(span.entity)).apply(
            span.entity, text[span.start:span.end], ctx))
        last = span.end
    out.append(text[last:])
    return Redaction("".join(out), tuple(spans), dict(Counter(s.entity for s in spans)))


def _precedence(finding: Finding) -> tuple[bool, float, int]:
    """Which finding names a merged span: a pattern's (checked by its own rule) before the
    NER model's guess, then the higher score, then the longer span."""
    return finding.source != "ner", finding.score, finding.end - finding.start


def select(text: str, findings: Sequence[Finding], policy: RedactionPolicy) -> list[Finding]:
    """The policy's findings, overlaps merged, in text order. A finding inside an existing
    placeholder (``<PERSON_1>``, put there by the guard) is not redacted again."""
    kept = [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(text)] if "<" in text else []
    wanted = sorted((f for f in findings if policy.wants(f.entity, f.score)
                     and not policy.allowed(text[f.start:f.end])
                     and not any(a <= f.start and f.end <= b for a, b in kept)),
                    key=lambda f: (f.start, -f.end))
    merged: list[Finding] = []
    for finding in wanted:
        if merged and finding.start < merged[-1].end:
            prev = merged[-1]
            lead = max(prev, finding, key=_precedence)
            merged[-1] = Finding(lead.entity, prev.start, max(prev.end, finding.end),
                                 max(prev.score, finding.score), lead.source)
        else:
            merged.append(finding)
    return merged
