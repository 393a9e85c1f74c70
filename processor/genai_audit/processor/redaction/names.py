"""Names beyond what the NER model marks: the whole written form of a name it found, and
the names written alongside it.

The small model often finds the core of a name and stops, or finds one name of a list:

* a title or degree written with the name is part of what identifies the person
  (``Dipl.-Ing. Jörg Wendel``, ``Univ.Prof. Ingrid Halm MBA``, ``Maria Novak M.Sc.``):
  a PERSON span is widened over the titles before it and the degrees after it, and over
  the capitalized name words either side (``Emmanuel |du Charrier|``) that are not common
  sentence words;
* the words just before a street address, on its line or the line before, are its
  addressee (``Ship to: Summer Hope\n12 Baker Street``);
* a name opening a sentence before ", the <role>," is a name (``Summer Hope, the new
  accountant, said``);
* names coordinated with a name (``the shop belongs to Maria Novak, Hope and Summer``,
  ``said Hope to Summer``) are names too: capitalized words joined to a PERSON span by a comma,
  a conjunction or "to" are marked PERSON, unless they are common sentence words.

Pure functions over one text and its findings; ``engine.py`` calls ``appositions`` and
``widen_names`` last. Each rule was tuned on the corpus's tuning split only
(``docs/redaction.md``, Measured).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from genai_audit.processor.redaction.recognizers import Finding

SCORE = 0.7  # a coordinated name: below the model's own guesses, above the default threshold

# Titles written before a name (English, German, French, Spanish); dots optional.
_PREFIX = re.compile(
    r"(?:(?:Dipl\.?-Ing|Dipl\.?-Kfm|Dipl\.?-Psych|Univ\.?[ ]?Prof|Prof|Dr|Ing|Mag|Mr|Mrs|Ms|Mx|"
    r"Herr|Frau|Mme|Mlle|Sr|Sra|Srta|Don|Doña)\.?[ \t]+)+$")
# Degrees and suffixes written after a name.
_SUFFIX = re.compile(
    r"(?:,?[ \t]+(?:B\.?[ ]?Sc|M\.?[ ]?Sc|B\.?[ ]?A|M\.?[ ]?A|B\.?[ ]?Eng|M\.?[ ]?Eng|MBA|"
    r"Ph\.?[ ]?D|M\.?[ ]?D|DVM|DDS|Jr|Sr|II|III|IV|LL\.?[ ]?M|MSc|BSc)\.?(?![\w]))+")
_NAME_WORD = r"[A-ZÀ-ÖØ-Þ][\w'\u2019]+(?:-[A-ZÀ-ÖØ-Þ][\w'\u2019]+)*"
# More of a name after the model's PERSON: surnames, a particle, a hyphenated part, a
# suffix ("Théophile| Pereira", "Horst|-Peter Becker", "Michael Matthews| DVM").
NAME_TAIL = re.compile(
    r"(?:[ \t]+(?:(?:de|del|de la|da|di|du|van|von|der|le|la)[ \t]+)?|-)"
    r"([A-ZÀ-ÖØ-Þ][\w'\u2019]+(?:-[A-ZÀ-ÖØ-Þ][\w'\u2019]+)*\.?)"
    r"(?:[ \t]+[A-ZÀ-ÖØ-Þ][\w'\u2019]+(?:-[A-ZÀ-ÖØ-Þ][\w'\u2019]+)*\.?){0,2}")
_BEFORE = re.compile(rf"(?<![\w'\u2019.\-])({_NAME_WORD})[ \t]+$")
_PARTICLE = r"(?:de|del|de la|da|di|du|van|von|der|le|la|y)"
_FULL_NAME = rf"{_NAME_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)?{_NAME_WORD}){{1,3}}"
# Two to four name words ending just before an address, after a line break or a label.
_ADDRESSEE = re.compile(rf"(?:^|[\n:>])[ \t]*({_FULL_NAME}\.?)[\s>,]*$")
_APPOSITION = re.compile(rf"(?:^|(?<=[.!?\n]) ?)({_FULL_NAME}),[ \t]+the[ \t]", re.MULTILINE)
# A name joined after a name: ", Moyer", " and Figueroa", " to Domenico", " und Petra Lang".
_NEXT = re.compile(
    rf"(?:,[ \t]*(?:and[ \t]+|und[ \t]+|et[ \t]+|y[ \t]+)?|[ \t]+(?:and|und|et|y|or|to)[ \t]+)"
    rf"({_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}})")
# A name joined before a name: "Klein, " / "Patrik and ".
_PREV = re.compile(
    rf"(?<![\w'\u2019])({_NAME_WORD})(?:,[ \t]*|[ \t]+(?:and|und|et|y|or)[ \t]+)$")


def widen_names(text: str, findings: Sequence[Finding], common: Iterable[str]
                ) -> list[Finding]:
    """``findings`` with each PERSON span widened over its titles and degrees, plus the
    names coordinated with it. ``common``: lower-case words never taken as a name."""
    common = frozenset(common)
    out = list(findings)
    for finding in findings:
        if finding.entity == "STREET_ADDRESS":
            addressee = _ADDRESSEE.search(text, max(0, finding.start - 80), finding.start)
            if addressee is not None and addressee.group(1).split()[0].lower() not in common:
                out.append(Finding("PERSON", *_widen(text, *addressee.span(1)), SCORE,
                                   "addressee"))
        if finding.entity != "PERSON":
            continue
        start, end = _widen(text, finding.start, finding.end, common)
        if (start, end) != (finding.start, finding.end):
            out.append(Finding("PERSON", start, end, finding.score, finding.source))
        out.extend(_coordinated(text, start, end, common))
    return out


def appositions(text: str, common: frozenset[str]) -> Iterable[Finding]:
    """Names opening a sentence before ", the <role>,"."""
    if ", the " not in text:
        return
    for match in _APPOSITION.finditer(text):
        if match.group(1).split()[0].lower() not in common:
            yield Finding("PERSON", *_widen(text, *match.span(1)), SCORE, "apposition")


def _widen(text: str, start: int, end: int, common: frozenset[str] = frozenset()
           ) -> tuple[int, int]:
    """A name's span widened over the name words, titles and degrees written with it."""
    if common:
        tail = NAME_TAIL.match(text, end)
        if tail is not None and tail.group(1).lower() not in common:
            end = tail.end()
        before = _BEFORE.search(text, max(0, start - 40), start)
        if before is not None and before.group(1).lower() not in common:
            start = before.start(1)
    prefix = _PREFIX.search(text, max(0, start - 40), start)
    if prefix is not None:
        start = prefix.start()
    suffix = _SUFFIX.match(text, end)
    if suffix is not None:
        end = suffix.end()
    return start, end


def _coordinated(text: str, start: int, end: int, common: frozenset[str]
                 ) -> Iterable[Finding]:
    position = end
    for _ in range(4):  # "A, B, C and D"
        match = _NEXT.match(text, position)
        if match is None or match.group(1).split()[0].lower() in common:
            break
        yield Finding("PERSON", *_widen(text, *match.span(1)), SCORE, "coordinated_name")
        position = match.end()
    position = start
    for _ in range(4):
        match = _PREV.search(text, max(0, position - 60), position)
        if match is None or match.group(1).lower() in common:
            break
        yield Finding("PERSON", *_widen(text, *match.span(1)), SCORE, "coordinated_name")
        position = match.start()
