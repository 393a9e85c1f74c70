"""Recognizers on the cases issue 22 names and on EU forms; validators on their own.
Recall on the independent corpus is in test_independent_corpus.py."""

from __future__ import annotations

import pytest
import redaction_corpus as corpus

from genai_audit.processor.redaction import validators as v
from genai_audit.processor.redaction.engine import RedactionEngine, ner_segments
from genai_audit.processor.redaction.policy import RedactionPolicy
from genai_audit.processor.redaction.recognizers import find_patterns
from genai_audit.processor.redaction.redact import select


def _caught(engine: RedactionEngine, text: str, value: str, entity: str | None = None) -> bool:
    start = text.index(value)
    spans = select(text, engine.analyze(text), RedactionPolicy())
    covering = [f for f in spans if f.start <= start and start + len(value) <= f.end]
    return bool(covering) and (entity is None or covering[0].entity == entity)


@pytest.mark.parametrize("number", ["795 487 714", "455 6186", "96 835939", "(0161) 4960141",
                                    "02623 49356", "001-610-611-8120x1750", "+34 920000806",
                                    "+33 5 56 34 39 55", "843-698-9433x7055"])
def test_phones_national_international_and_plain_after_call_me(engine: RedactionEngine,
                                                               number: str) -> None:
    assert _caught(engine, f"Please call me at {number} tomorrow.", number, "PHONE_NUMBER")


@pytest.mark.parametrize("number", ["180013334312787", "213143904974095", "3511664453891599",
                                    "3530111333300000"])
def test_cards_after_card_no_whatever_the_brand(engine: RedactionEngine, number: str) -> None:
    assert _caught(engine, f"Please block card no {number}", number, "CREDIT_CARD")


@pytest.mark.parametrize("date", ["03/19/1983 01:49 AM", "Saturday, June 25, 2016",
                                  "2010-09-27 10:38:35", "June 2022", "09 Jul 1994 03:55",
                                  "12. März 2021", "3 janvier 2020", "5 de mayo de 2019"])
def test_dates_and_times_in_written_forms(engine: RedactionEngine, date: str) -> None:
    assert _caught(engine, f"She was born on {date}. Thanks", date, "DATE_TIME")


@pytest.mark.parametrize(("text", "age"), [("He just turned 78 years old", "78"),
                                           ("a 45-year-old male", "45"),
                                           ("I'm 31 y/o.", "31"), ("retired at the age of 64", "64"),
                                           ("Er ist 52 Jahre alt.", "52"), ("Elle a 40 ans.", "40")])
def test_ages(engine: RedactionEngine, text: str, age: str) -> None:
    assert _caught(engine, text, age, "AGE")


@pytest.mark.parametrize(("text", "value", "entity"), [
    ("Rufen Sie mich unter 030 12345678 an.", "030 12345678", "PHONE_NUMBER"),
    ("Appelez-moi au 01 42 68 53 00 demain.", "01 42 68 53 00", "PHONE_NUMBER"),
    ("Llámame al 912 345 678 por favor.", "912 345 678", "PHONE_NUMBER"),
    ("IBAN: DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
    ("Mon IBAN est FR14 2004 1010 0505 0001 3M02 606.", "FR14 2004 1010 0505 0001 3M02 606",
     "IBAN_CODE"),
    ("Mi IBAN es ES91 2100 0418 4502 0005 1332.", "ES91 2100 0418 4502 0005 1332", "IBAN_CODE"),
    ("Schreiben Sie an jürgen.müller@beispiel.de bitte.", "müller@beispiel.de", "EMAIL_ADDRESS"),
    ("Écrivez à amélie.dupont@exemple.fr svp.", "dupont@exemple.fr", "EMAIL_ADDRESS"),
    ("Personalausweisnummer: T22000129", "T22000129", None),
    ("Mi DNI es 12345678Z.", "12345678Z", None),
    ("NIE: X1234567L", "X1234567L", None),
    ("Mon numéro de sécurité sociale est 1 84 12 76 451 089 46.", "1 84 12 76 451 089 46", None),
    ("Steuer-ID 65929970489 bitte prüfen", "65929970489", None),
])
def test_eu_phone_iban_email_and_national_ids(engine: RedactionEngine, text: str, value: str,
                                              entity: str | None) -> None:
    assert _caught(engine, text, value, entity), text


def test_pii_free_sentences_have_no_findings(engine: RedactionEngine) -> None:
    """The corpus's templates without a field (both splits): nothing to redact, but for the
    template written to trap NER ("Capitalized words like Wisdom...") and "the Devil"."""
    policy = RedactionPolicy()
    texts = sorted({s.text for s in corpus.load(None) if not s.spans})
    flagged = [t for t in texts if select(t, engine.analyze(t), policy)]
    assert len(texts) >= 10 and len(flagged) <= 2, flagged  # Wisdom, the Devil


@pytest.mark.parametrize("number", [
    "4111 1111 1111 1111", "5555-5555-5555-4444", "2223 0031 2200 3222", "378282246310005",
    "6011111111111117", "3530111333300000", "36227206271667", "6062826786276634",
    "4000 0000 0000 0000 006"])
def test_cards_of_every_brand_and_length(number: str) -> None:
    assert v.credit_card(number)
    text = f"card {number} ok"
    merged = select(text, find_patterns(text), RedactionPolicy())
    assert [(f.entity, text[f.start:f.end]) for f in merged] == [("CREDIT_CARD", number)]


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "1234 5678 9012 3456",
                                    "0000 0000 0000 0000"])
def test_cards_failing_luhn_or_brand_are_not_cards(number: str) -> None:
    assert not v.credit_card(number)


def test_iban_checksum() -> None:
    assert v.iban("GB82 WEST 1234 5698 7654 32")
    assert v.iban("DE89370400440532013000")
    assert not v.iban("GB83 WEST 1234 5698 7654 32")
    assert not v.iban("DE8937040044053201300")  # one digit short


def test_ssn_rules() -> None:
    assert v.us_ssn("123-45-6789")
    assert not any(v.us_ssn(s) for s in ("000-12-3456", "666-12-3456", "912-12-3456",
                                         "123-00-4567", "123-45-0000", "111-11-1111"))


def test_context_words_lift_scores() -> None:
    bare = [f for f in find_patterns("ref 02139 here") if f.entity == "ZIP_CODE"]
    lifted = [f for f in find_patterns("zip code 02139 here") if f.entity == "ZIP_CODE"]
    assert bare and lifted and lifted[0].score > bare[0].score
    policy = RedactionPolicy()
    assert not any(policy.wants(f.entity, f.score) for f in bare)
    assert any(policy.wants(f.entity, f.score) for f in lifted)


def test_secrets() -> None:
    text = ("key sk-proj-Abcdefghijklmnopqrstuvwx12345 and AKIAIOSFODNN7EXAMPLE\n"
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
            "-----END PRIVATE KEY-----")
    entities = {f.entity for f in find_patterns(text)}
    assert {"API_KEY", "AWS_ACCESS_KEY", "PRIVATE_KEY"} <= entities


def test_dates_keep_bare_years() -> None:
    text = "It happened in 1998, on a Monday."
    assert select(text, find_patterns(text), RedactionPolicy()) == []
    wanting = RedactionPolicy(thresholds={"DATE_TIME": 0.3})
    assert [text[f.start:f.end] for f in select(text, find_patterns(text), wanting)] == [
        "1998", "Monday"]
    assert not v.numeric_date("13/13/2020")


def test_ner_sees_only_sentences_that_may_hold_a_name() -> None:
    text = "Please summarize this. the rest is lowercase. Then Maria Novak called."
    segments = [text[a:b] for a, b in ner_segments(text)]
    assert segments == ["Then Maria Novak called."]


def test_ner_reads_a_window_around_each_candidate_name() -> None:
    text = ("please read the whole report about the budget and then forward it to Maria "
            "Novak before the meeting that starts at noon on the second floor.")
    segments = [text[a:b] for a, b in ner_segments(text)]
    assert segments == ["it to Maria Novak before the"]


@pytest.mark.parametrize(("text", "name"), [
    ("Please forward the report to Dipl.-Ing. Jörg Wendel.", "Dipl.-Ing. Jörg Wendel"),
    ("The paper is by Univ.Prof. Ingrid Halm MBA and two students.", "Univ.Prof. Ingrid Halm MBA"),
    ("Ask Dr. Maria Novak M.Sc. about the samples.", "Dr. Maria Novak M.Sc."),
])
def test_a_name_keeps_its_titles_and_degrees(engine: RedactionEngine, text: str,
                                             name: str) -> None:
    assert _caught(engine, text, name, "PERSON")


# First names that are also words (Hope, Summer, April): the model alone misses every one.
@pytest.mark.parametrize(("text", "names"), [
    ("The shop belongs to Maria Novak, Hope and Summer.", ["Hope", "Summer"]),
    ("Lunch? said Hope to Summer.", ["Summer"]),
    ("Hope: What a day.\nSummer: Indeed.", ["Summer"]),
    ("The lease was signed by: Hope Brandt", ["Hope Brandt"]),
    ("It was the new film starring Summer.", ["Summer"]),
    ("I know what you did, Summer!", ["Summer"]),
    ("Remember me, April?", ["April"]),
    ("My take on de Sauvage is below.", ["de Sauvage"]),
    ("Hope lives at the corner of the square.", ["Hope"]),
    ("Summer spent a year at the mill.", ["Summer"]),
    ("Ship it to:\nSummer Hope\n12 Baker Street\nLeeds", ["Summer Hope"]),
    ("Summer Hope, the new accountant, said hello.", ["Summer Hope"]),
])
def test_names_the_model_misses_around_a_cue_or_a_name(engine: RedactionEngine, text: str,
                                                       names: list[str]) -> None:
    for name in names:
        assert _caught(engine, text, name), name


@pytest.mark.parametrize("text", [
    "Name: see the attached form.", "Subject: quarterly figures", "Note: the office is closed!",
    "Was it worth it, really?", "The committee met on Tuesday and agreed on the budget.",
    "God gave rock and roll to you.",
])
def test_form_labels_and_plain_words_are_not_names(engine: RedactionEngine, text: str) -> None:
    assert not [f for f in select(text, engine.analyze(text), RedactionPolicy())
                if f.entity == "PERSON"]


@pytest.mark.parametrize("text", [
    "Noted: Please email the team about order 4412",
    "Thanks: the report is attached.",
    "Update: the deploy finished.",
    "Warning: the disk is nearly full.",
    "Reasoning: the first option is cheaper.",
    "Summary: three tickets closed.",
])
def test_a_chat_opener_before_a_colon_is_not_a_speaker(text):
    """The speaker rule took any capitalized word opening a line before a colon for a name:
    model output such as 'Noted: Please email ...' lost its first word (interop matrix)."""
    assert not [f for f in find_patterns(text) if f.entity == "PERSON"]


@pytest.mark.parametrize("text, name", [
    ("Pauline: What a wife.", "Pauline"),
    ("Alfred: I will be late.", "Alfred"),
    ("Mildred Hayes: Not today.", "Mildred Hayes"),
])
def test_a_speaker_before_a_colon_is_still_a_name(text, name):
    assert name in [text[f.start:f.end] for f in find_patterns(text) if f.entity == "PERSON"]
