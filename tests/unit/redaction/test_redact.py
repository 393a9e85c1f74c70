"""redact(): operators, placeholders, allow-lists, thresholds, overlaps, stream re-filling."""

from __future__ import annotations

import re

import pytest

from genai_audit.processor.redaction.engine import RedactionEngine
from genai_audit.processor.redaction.operators import get_operator
from genai_audit.processor.redaction.placeholders import Placeholders, StreamRefiller
from genai_audit.processor.redaction.policy import RedactionPolicy
from genai_audit.processor.redaction.recognizers import Finding
from genai_audit.processor.redaction.redact import redact, select

TEXT = "Maria Novak (maria.novak@clinic.org) paid with 4111 1111 1111 1111."


def test_replace_gives_typed_numbered_placeholders(engine: RedactionEngine) -> None:
    result = redact(TEXT, engine=engine, policy=RedactionPolicy())
    assert result.text == "<PERSON_1> (<EMAIL_ADDRESS_1>) paid with <CREDIT_CARD_1>."
    assert result.counts == {"PERSON": 1, "EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    assert [TEXT[e.start:e.end] for e in result.entities] == [
        "Maria Novak", "maria.novak@clinic.org", "4111 1111 1111 1111"]
    assert all(0 < e.score <= 1 for e in result.entities)


def test_placeholders_are_consistent_across_texts_of_one_interaction(
        engine: RedactionEngine) -> None:
    shared = Placeholders()
    prompt = redact("Email maria@x.org, omar@y.org or call +44 20 7946 0958.", engine=engine,
                    policy=RedactionPolicy(), placeholders=shared)
    answer = redact("Noted: +44 20 7946 0958 and omar@y.org", engine=engine,
                    policy=RedactionPolicy(), placeholders=shared)
    assert prompt.text == ("Email <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_2> or call "
                           "<PHONE_NUMBER_1>.")
    assert answer.text == "Noted: <PHONE_NUMBER_1> and <EMAIL_ADDRESS_2>"
    assert shared.refill(answer.text) == "Noted: +44 20 7946 0958 and omar@y.org"


def test_mask_and_drop(engine: RedactionEngine) -> None:
    text = "write to maria.novak@clinic.org now"
    masked = redact(text, engine=engine, policy=RedactionPolicy(operator="mask"))
    assert masked.text == "write to *****.*****@******.*** now"
    dropped = redact(text, engine=engine, policy=RedactionPolicy(operator="drop"))
    assert dropped.text == "write to  now"


def test_mask_keeps_last_four_of_a_card(engine: RedactionEngine) -> None:
    result = redact("card 4111 1111 1111 1111", engine=engine,
                    policy=RedactionPolicy(operator="mask"))
    assert result.text == "card **** **** **** 1111"


def test_hmac_is_keyed_and_stable(engine: RedactionEngine) -> None:
    policy = RedactionPolicy(operator="hmac")
    one = redact("mail maria@x.org", engine=engine, policy=policy, secret=lambda: b"k1" * 16)
    again = redact("mail MARIA@x.org", engine=engine, policy=policy, secret=lambda: b"k1" * 16)
    other = redact("mail maria@x.org", engine=engine, policy=policy, secret=lambda: b"k2" * 16)
    assert re.fullmatch(r"mail <EMAIL_ADDRESS:[0-9a-f]{12}>", one.text)
    assert one.text == again.text != other.text


def test_hmac_without_a_secret_fails_loudly(engine: RedactionEngine) -> None:
    with pytest.raises(RuntimeError, match="secret"):
        redact("mail maria@x.org", engine=engine, policy=RedactionPolicy(operator="hmac"))


def test_unknown_operator() -> None:
    with pytest.raises(ValueError, match="unknown redaction operator 'shred'"):
        get_operator("shred")


def test_allow_list_entity_filter_and_thresholds(engine: RedactionEngine) -> None:
    text = "Omar Haddad from Boston wrote to maria@x.org"
    allow = redact(text, engine=engine, policy=RedactionPolicy(allow=frozenset({"boston"})))
    assert "Boston" in allow.text and "Omar" not in allow.text
    only_email = redact(text, engine=engine,
                        policy=RedactionPolicy(entities=frozenset({"EMAIL_ADDRESS"})))
    assert only_email.text == "Omar Haddad from Boston wrote to <EMAIL_ADDRESS_1>"
    strict = redact(text, engine=engine, policy=RedactionPolicy(thresholds={"PERSON": 0.99}))
    assert "Omar Haddad" in strict.text and "<LOCATION_1>" in strict.text


def test_overlapping_findings_merge_into_one_span_without_leaking() -> None:
    findings = [Finding("PHONE_NUMBER", 4, 14, 0.6, "a"), Finding("US_SSN", 10, 20, 0.9, "b")]
    merged = select("x" * 30, findings, RedactionPolicy())
    assert [(f.entity, f.start, f.end) for f in merged] == [("US_SSN", 4, 20)]


def test_disabled_policy_returns_text_unchanged(engine: RedactionEngine) -> None:
    assert redact(TEXT, engine=engine, policy=RedactionPolicy(enabled=False)).text == TEXT


def test_stream_refiller_handles_split_placeholders() -> None:
    ph = Placeholders()
    ph.placeholder("PERSON", "Maria Novak")
    ph.placeholder("EMAIL_ADDRESS", "m@x.org")
    refill = StreamRefiller(ph)
    chunks = ["Hello <PER", "SON_1>, mail <", "EMAIL_ADD", "RESS_1> or <b>. 3 < 4", " <PERSON_"]
    out = "".join(refill.feed(c) for c in chunks) + refill.flush()
    assert out == "Hello Maria Novak, mail m@x.org or <b>. 3 < 4 <PERSON_"


def test_existing_placeholders_are_not_redacted_again(engine: RedactionEngine) -> None:
    text = "<PERSON_1> asked <ORGANIZATION_2> to call <PHONE_NUMBER_1> about Omar Haddad"
    result = redact(text, engine=engine, policy=RedactionPolicy())
    assert result.text.startswith("<PERSON_1> asked <ORGANIZATION_2> to call <PHONE_NUMBER_1>")
    assert result.text.endswith("about <PERSON_2>")
