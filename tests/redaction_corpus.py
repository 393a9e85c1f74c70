"""The independent redaction corpus: third-party templates filled by Faker, and its scoring.

Nothing here knows the recognizers. The sentence templates are presidio-evaluator's
(``tests/data/redaction/presidio_templates.txt``, microsoft/presidio-research at commit
7622dec1e5f7d25dc60b57c28c39f4c4af197018, MIT licence in ``LICENSE-presidio-research``;
``nationalities.csv`` is from the same place); the values come from Faker in five locales
(en_US, en_GB, de_DE, fr_FR, es_ES), one locale per sentence. The entity type of each
template field follows presidio-evaluator's mapping (``FIELDS``).

The committed corpus, ``tests/data/redaction/corpus.jsonl``, is made once and
deterministically by ``python tests/redaction_corpus.py`` (seed ``SEED``, Faker pinned in
constraints.txt). One JSON object a line: ``text``, ``template`` (line number in the
template file), ``locale``, ``split`` and ``spans`` (``start``, ``end``, ``entity``,
``field``).

Split rule (fixed before any recognizer change): a template is held out when the first
byte of sha256 of its text is odd; every sentence of a held-out template is in the
``held_out`` split, the rest in ``tuning``. Recognizers may be tuned by looking at the
tuning split only; tests and the bench report the held-out split.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "redaction"
TEMPLATES = DATA / "presidio_templates.txt"
CORPUS = DATA / "corpus.jsonl"
SEED = 20261203
PER_TEMPLATE = 20
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES")

# Template field -> entity type (presidio-evaluator's names).
FIELDS: dict[str, str] = {
    **dict.fromkeys(("person", "name", "first_name", "last_name", "name_female", "name_male",
                     "first_name_male", "first_name_female", "first_name_nonbinary",
                     "last_name_male", "last_name_female"), "PERSON"),
    **dict.fromkeys(("address", "street_name", "building_number", "secondary_address"),
                    "STREET_ADDRESS"),
    **dict.fromkeys(("city", "country", "state_abbr"), "GPE"),
    **dict.fromkeys(("zipcode", "postcode"), "ZIP_CODE"),
    **dict.fromkeys(("date_time", "date_of_birth", "year", "day_of_week"), "DATE_TIME"),
    **dict.fromkeys(("nationality", "nation_woman", "nation_plural"), "NRP"),
    **dict.fromkeys(("prefix", "prefix_male", "prefix_female", "job"), "TITLE"),
    "organization": "ORGANIZATION", "age": "AGE", "phone_number": "PHONE_NUMBER",
    "credit_card_number": "CREDIT_CARD", "iban": "IBAN_CODE", "email": "EMAIL_ADDRESS",
    "url": "URL", "ip_address": "IP_ADDRESS", "ssn": "US_SSN",
    "us_driver_license": "US_DRIVER_LICENSE",
}
# Parts of a date that HIPAA Safe Harbor keeps (the year) or that identify no day alone.
DATE_PARTS = frozenset({"year", "day_of_week"})
STRUCTURED = frozenset({"CREDIT_CARD", "PHONE_NUMBER", "EMAIL_ADDRESS", "IBAN_CODE", "US_SSN",
                        "IP_ADDRESS", "US_DRIVER_LICENSE"})
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%B %d, %Y", "%d %B %Y",
                "%b %d %Y", "%A, %B %d, %Y", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %I:%M %p",
                "%B %Y", "%d %b %Y %H:%M")
_FIELD = re.compile(r"\{\{(\w+)\}\}")


@dataclass
class Sample:
    text: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    template: int = 0
    locale: str = "en_US"
    split: str = "tuning"

    @property
    def labels(self) -> list[tuple[int, int, str]]:
        return [(s["start"], s["end"], label_type(s)) for s in self.spans]


def label_type(span: dict[str, Any]) -> str:
    """The type a span is scored under: a bare year or weekday is its own row."""
    if span["field"] in DATE_PARTS:
        return "DATE_TIME (year or weekday alone)"
    return str(span["entity"])


def held_out(template: str) -> bool:
    return hashlib.sha256(template.encode("utf-8")).digest()[0] % 2 == 1


# -- generation ----------------------------------------------------------------------------
def _nationalities() -> list[dict[str, str]]:
    with (DATA / "nationalities.csv").open(encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _value(name: str, fake: Any, fallback: Any, rng: random.Random,
           nations: list[dict[str, str]]) -> str:
    if name in ("person", "name"):
        return str(fake.name())
    if name == "organization":
        return str(fake.company())
    if name == "address":
        return str(fake.address())
    if name == "email":
        return str(fake.email())
    if name == "ip_address":
        return str(fake.ipv4() if rng.random() < 0.7 else fake.ipv6())
    if name == "ssn":
        return str(fallback.ssn())
    if name == "us_driver_license":
        return str(fallback.bothify(rng.choice(("?#######", "#########", "?###-####-####"))))
    if name == "age":
        return str(rng.randint(1, 100))
    if name == "year":
        return str(_moment(fake).year)
    if name in ("date_time", "date_of_birth"):
        return _moment(fake).strftime(rng.choice(DATE_FORMATS))
    if name == "day_of_week":
        return _moment(fake).strftime("%A")
    if name in ("nationality", "nation_woman", "nation_plural"):
        row = rng.choice(nations)
        key = {"nationality": "nationality", "nation_woman": "woman",
               "nation_plural": "plural"}[name]
        return row[key].title()
    for source in (fake, fallback):
        method: Callable[[], Any] | None = getattr(source, name, None)
        if method is not None:
            try:
                return str(method())
            except AttributeError:
                continue
    raise KeyError(f"no Faker provider for template field {name!r}")


def _moment(fake: Any) -> datetime:
    """A date and time between fixed bounds (Faker's own ``date_time`` ends at today, which
    would make the corpus depend on the day it is generated)."""
    return fake.date_time_between(datetime(1930, 1, 1), datetime(2025, 12, 31))  # type: ignore[no-any-return]


def fill(template: str, fake: Any, fallback: Any, rng: random.Random,
         nations: list[dict[str, str]]) -> Sample:
    out: list[str] = []
    spans: list[dict[str, Any]] = []
    last = length = 0
    for match in _FIELD.finditer(template):
        literal = template[last:match.start()]
        out.append(literal)
        length += len(literal)
        name = match.group(1)
        value = _value(name, fake, fallback, rng, nations)
        spans.append({"start": length, "end": length + len(value), "entity": FIELDS[name],
                      "field": name})
        out.append(value)
        length += len(value)
        last = match.end()
    out.append(template[last:])
    return Sample("".join(out), spans)


def generate(per_template: int = PER_TEMPLATE, seed: int = SEED) -> list[Sample]:
    from faker import Faker

    Faker.seed(seed)
    fakers = {locale: Faker(locale) for locale in LOCALES}
    fallback = fakers["en_US"]
    rng = random.Random(seed)
    nations = _nationalities()
    samples: list[Sample] = []
    lines = TEMPLATES.read_text("utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        template = line.replace("\\n", "\n").strip(" ")
        if not template.strip():
            continue
        split = "held_out" if held_out(template) else "tuning"
        for _ in range(per_template):
            locale = rng.choice(LOCALES)
            sample = fill(template, fakers[locale], fallback, rng, nations)
            sample.template, sample.locale, sample.split = number, locale, split
            samples.append(sample)
    return samples


def write(samples: Iterable[Sample], path: Path = CORPUS) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps({"text": s.text, "template": s.template, "locale": s.locale,
                                 "split": s.split, "spans": s.spans}, ensure_ascii=False))
            fh.write("\n")


def load(split: str | None = "held_out", path: Path = CORPUS) -> list[Sample]:
    """The committed corpus (``split`` None: both splits)."""
    samples = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if split is None or row["split"] == split:
                samples.append(Sample(row["text"], row["spans"], row["template"],
                                      row["locale"], row["split"]))
    return samples


def documents(samples: Sequence[Sample], n: int, size: int, seed: int = 11) -> list[str]:
    """``n`` texts of about ``size`` characters, each corpus sentences strung together."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts: list[str] = []
        while sum(map(len, parts)) + len(parts) < size:
            parts.append(rng.choice(samples).text)
        texts.append(" ".join(parts))
    return texts


# -- scoring ------------------------------------------------------------------------------
def leaked(text: str, label: tuple[int, int, str], spans: Sequence[tuple[int, int]]) -> bool:
    """True if any letter or digit of the labeled value is outside every detected span."""
    start, end, _ = label
    covered = [False] * (end - start)
    for a, b in spans:
        for i in range(max(a, start), min(b, end)):
            covered[i - start] = True
    return any(not ok and text[start + i].isalnum() for i, ok in enumerate(covered))


@dataclass(frozen=True)
class Score:
    leaks: dict[str, tuple[int, int]]  # type -> (leaked, total)
    words_kept: int
    words_outside: int

    def leak(self, entity: str) -> float:
        leaked_, total = self.leaks[entity]
        return leaked_ / total

    def group_leak(self, entities: Iterable[str]) -> float:
        pairs = [self.leaks[e] for e in entities if e in self.leaks]
        return sum(p[0] for p in pairs) / max(1, sum(p[1] for p in pairs))

    @property
    def utility(self) -> float:
        return self.words_kept / max(1, self.words_outside)


_WORDS = re.compile(r"\w+")


def score(samples: Sequence[Sample], detected: Sequence[Sequence[tuple[int, int]]]) -> Score:
    """Leak per labeled type, and utility: the share of words outside every labeled value
    that no detection touches."""
    leaks: dict[str, list[int]] = {}
    kept = outside = 0
    for s, found in zip(samples, detected, strict=True):
        for label in s.labels:
            tally = leaks.setdefault(label[2], [0, 0])
            tally[0] += leaked(s.text, label, found)
            tally[1] += 1
        labeled = [(a, b) for a, b, _ in s.labels]
        for word in _WORDS.finditer(s.text):
            a, b = word.span()
            if any(a < y and x < b for x, y in labeled):
                continue
            outside += 1
            kept += not any(a < y and x < b for x, y in found)
    return Score({e: (t[0], t[1]) for e, t in sorted(leaks.items())}, kept, outside)


if __name__ == "__main__":
    corpus = generate()
    write(corpus)
    counts: dict[str, dict[str, int]] = {}
    for s in corpus:
        for _, _, entity in s.labels:
            counts.setdefault(entity, {}).setdefault(s.split, 0)
            counts[entity][s.split] += 1
    print(f"{len(corpus)} sentences -> {CORPUS}", file=sys.stderr)
    for entity, by_split in sorted(counts.items()):
        print(f"  {entity:36} {by_split}", file=sys.stderr)
