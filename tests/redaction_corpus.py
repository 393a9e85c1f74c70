"""A labeled corpus for redaction tests and ``bench/redaction.py``, generated here.

Own templates and own value generators (no test-data generator's word lists): names and
places are short hand-written lists, numbers are generated with their real check digits
(Luhn, IBAN mod-97, VIN), so a finding is right only if the recognizer is.

``sample(rng, entity)`` -> ``Sample(text, labels)`` with labels as (start, end, entity);
``documents(rng, n, size)`` strings samples and PII-free filler into ~200-char or ~1 KB
texts, as prompts look.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST = ["Maria", "Alan", "Priya", "Tomasz", "Aisha", "Kenji", "Lucia", "Omar", "Ingrid",
         "Mateo", "Chidi", "Elena", "Rahul", "Sofia", "Dmitri", "Grace", "Hannah", "Jamal",
         "Yuki", "Fatima", "Brendan", "Olga", "Samuel", "Noor"]
LAST = ["Gonzalez", "Whitfield", "Raman", "Kowalski", "Okafor", "Tanaka", "Moretti", "Haddad",
        "Lindqvist", "Alvarez", "Nwosu", "Petrova", "Sharma", "Costa", "Ivanov", "Mensah",
        "Becker", "Carter", "Sato", "Rahman", "Fitzgerald", "Novak", "Delgado", "Brennan"]
CITIES = ["Boston", "Chicago", "Leeds", "Lyon", "Toronto", "Dublin", "Denver", "Seattle",
          "Madrid", "Munich", "Oslo", "Melbourne", "Houston", "Atlanta", "Glasgow", "Vienna"]
STREETS = ["Oak", "Maple", "Cedar", "Elm", "Willow", "Harbor", "Chestnut", "Birch", "Juniper"]
STREET_KINDS = ["Street", "Avenue", "Road", "Lane", "Drive", "Boulevard", "Court", "St.",
                "Ave"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
STATES = ["MA", "CA", "NY", "TX", "IL", "WA", "OR", "GA"]

FILLER = [
    "Please summarize the discussion in three bullet points.",
    "Keep the tone friendly and avoid jargon.",
    "the quarterly numbers look better than expected, but churn is still high.",
    "We need the answer in plain English for a general audience.",
    "Draft a short reply that thanks them for their patience.",
    "Translate the following paragraph into simple language.",
    "what are the main risks of this approach and how would you mitigate them?",
    "Explain the difference between a deductible and a copay.",
    "Make sure the summary fits in a single paragraph.",
    "the meeting ran long, so the remaining items move to next week.",
    "Can you check whether the steps below are in the right order?",
    "List the follow-up actions and who owns each one.",
]


@dataclass
class Sample:
    text: str
    labels: list[tuple[int, int, str]] = field(default_factory=list)


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        number = body + check
        total = 0
        for i, ch in enumerate(reversed(number)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return number
    raise AssertionError("unreachable")


CARD_BRANDS: list[tuple[str, int]] = [
    ("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
    ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("6011", 19), ("3530", 16),
    ("36", 14), ("62", 19), ("6304", 12), ("6759", 19), ("2200", 16)]


def card(rng: random.Random) -> str:
    prefix, length = rng.choice(CARD_BRANDS)
    number = _luhn_complete(prefix, length, rng)
    sep = rng.choice(["", " ", "-"])
    if not sep:
        return number
    if length == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    if length == 14:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i:i + 4] for i in range(0, length, 4))


def iban(rng: random.Random) -> str:
    country, body_len = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country in ("GB", "NL"):
        body = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            rng.choice(string.digits) for _ in range(body_len - 4))
    else:
        body = "".join(rng.choice(string.digits) for _ in range(body_len))
    numeric = "".join(str(int(c, 36)) for c in body + country + "00")
    code = country + f"{98 - int(numeric) % 97:02d}" + body
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4)) if rng.random() < .5 else code


def _d(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def phone(rng: random.Random) -> str:
    return rng.choice([
        lambda: f"({rng.randint(201, 989)}) {rng.randint(200, 989)}-{_d(rng, 4)}",
        lambda: f"{rng.randint(201, 989)}-{rng.randint(200, 989)}-{_d(rng, 4)}",
        lambda: f"+1 {rng.randint(201, 989)} {rng.randint(200, 989)} {_d(rng, 4)}",
        lambda: f"+44 20 {_d(rng, 4)} {_d(rng, 4)}",
        lambda: f"+49 30 {_d(rng, 8)}",
        lambda: f"+33 1 {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}",
        lambda: f"+91 98{_d(rng, 3)} {_d(rng, 5)}",
        lambda: f"+81 3-{_d(rng, 4)}-{_d(rng, 4)}",
        lambda: f"0{rng.randint(20, 79)} {_d(rng, 4)} {_d(rng, 4)}",
    ])()


def ssn(rng: random.Random) -> str:
    return f"{rng.randint(101, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1001, 9999):04d}"


_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def vin(rng: random.Random) -> str:
    from genai_audit.processor.redaction.validators import _VIN_VALUES, _VIN_WEIGHTS

    chars = [rng.choice(_VIN_CHARS) for _ in range(17)]
    chars[0] = rng.choice("12345JKLSWY")
    chars[12:] = list(_d(rng, 5))
    total = sum(_VIN_VALUES[c] * w for c, w in zip(chars, _VIN_WEIGHTS, strict=True))
    chars[8] = "X" if total % 11 == 10 else str(total % 11)
    return "".join(chars)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps({"sub": _d(rng, 8), "iat": rng.randint(10**9, 2 * 10**9)}).encode())
    return f"{head}.{body}.{_b64url(rng.randbytes(32))}"


def _alnum(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits
           ) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xffff):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + ":".join(groups[6:])


def date(rng: random.Random) -> str:
    y, m, d = rng.randint(1940, 2024), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{MONTHS[m - 1]} {d}, {y}",
                       f"{d} {MONTHS[m - 1]} {y}", f"{d}.{m}.{y}", f"{MONTHS[m - 1][:3]} {d}"])


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "PERSON": person,
    "LOCATION": lambda r: r.choice(CITIES),
    "STREET_ADDRESS": lambda r: f"{r.randint(1, 9899)} {r.choice(STREETS)} {r.choice(STREET_KINDS)}",
    "ZIP_CODE": lambda r: f"{r.randint(1001, 99950):05d}",
    "DATE_TIME": date,
    "PHONE_NUMBER": phone,
    "EMAIL_ADDRESS": lambda r: f"{r.choice(FIRST).lower()}.{r.choice(LAST).lower()}"
                               f"{r.randint(1, 99)}@{r.choice(['mail.example.com', 'corp.test', 'uni.ac.uk', 'clinic.org'])}",
    "US_SSN": ssn,
    "MEDICAL_RECORD_NUMBER": lambda r: r.choice([_d(r, 7), "MR-" + _d(r, 6), _d(r, 3) + "-" + _d(r, 5)]),
    "HEALTH_PLAN_ID": lambda r: r.choice(["XG" + _d(r, 9), "W" + _d(r, 8) + "01", _d(r, 1) + "EG4-TE5-MK72"]),
    "ACCOUNT_NUMBER": lambda r: _d(r, r.randint(8, 14)),
    "LICENSE_NUMBER": lambda r: r.choice(["D" + _d(r, 7), "RN" + _d(r, 6), "B" + r.choice("ABCDF") + _d(r, 7)]),
    "VEHICLE_ID": vin,
    "DEVICE_ID": lambda r: r.choice(["SN-" + _alnum(r, 4, string.ascii_uppercase) + _d(r, 6),
                                     ":".join(f"{r.randint(0, 255):02X}" for _ in range(6))]),
    "URL": lambda r: f"https://{r.choice(['portal', 'www', 'my'])}.{r.choice(['example.com', 'clinic.org', 'shop.test'])}"
                     f"/patients/{_d(r, 5)}?ref={_alnum(r, 6)}",
    "IP_ADDRESS": lambda r: r.choice([f"{r.randint(11, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
                                      ipv6(r)]),
    "UNIQUE_ID": lambda r: r.choice(["E" + _d(r, 6), "C-" + _d(r, 7), _d(r, 2) + "-" + _d(r, 7)]),
    "CREDIT_CARD": card,
    "IBAN_CODE": iban,
    "API_KEY": lambda r: r.choice(["sk-proj-" + _alnum(r, 40), "sk-" + _alnum(r, 48),
                                   "ghp_" + _alnum(r, 36)]),
    "AWS_ACCESS_KEY": lambda r: "AKIA" + _alnum(r, 16, string.ascii_uppercase + string.digits),
    "AWS_SECRET_KEY": lambda r: _alnum(r, 30) + "/" + _alnum(r, 4) + "+" + _alnum(r, 4),
    "JWT_TOKEN": jwt,
    "PRIVATE_KEY": lambda r: "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(
        _alnum(r, 64, string.ascii_letters + string.digits + "+/") for _ in range(3))
        + "\n-----END RSA PRIVATE KEY-----",
}

TEMPLATES: dict[str, list[str]] = {
    "PERSON": ["My name is {v} and I need help with my claim.", "Please forward this to {v}.",
               "{v} called the clinic twice yesterday.", "The patient, {v}, reports mild pain.",
               "Schedule a follow-up with {v} for next month."],
    "LOCATION": ["She moved to {v} last spring.", "The patient lives in {v} with her family.",
                 "Our office in {v} handles the appeal."],
    "STREET_ADDRESS": ["Send the letter to {v}, second floor.", "He lives at {v} near the park.",
                       "Ship it to {v} by Friday."],
    "ZIP_CODE": ["The billing zip code is {v}.", "Postal code: {v}"],
    "DATE_TIME": ["She was born on {v}.", "Admitted {v} with chest pain.", "DOB: {v}",
                  "The visit on {v} was rescheduled."],
    "PHONE_NUMBER": ["Call me at {v} after five.", "My cell is {v}.", "Fax the form to {v}.",
                     "You can reach the ward on {v}."],
    "EMAIL_ADDRESS": ["Email me at {v} with the results.", "Contact: {v}",
                      "cc {v} on the reply."],
    "US_SSN": ["My SSN is {v}.", "social security number {v} on file",
               "Verify SSN {v} before release."],
    "MEDICAL_RECORD_NUMBER": ["MRN: {v}", "Pull the chart for medical record number {v}.",
                              "Patient MRN {v} needs a refill."],
    "HEALTH_PLAN_ID": ["Member ID {v} is active.", "Her insurance policy number is {v}.",
                       "Medicare beneficiary number: {v}"],
    "ACCOUNT_NUMBER": ["Deposit it into account number {v}.", "Acct #{v} is overdrawn.",
                       "The bank account {v} was closed."],
    "LICENSE_NUMBER": ["Driver's license {v} expires soon.", "Her nursing licence number is {v}.",
                       "DEA number {v} is on the script."],
    "VEHICLE_ID": ["The VIN is {v}.", "Vehicle {v} was towed."],
    "DEVICE_ID": ["Pacemaker serial number {v} was checked.", "Device ID: {v}",
                  "The pump's serial {v} is recalled."],
    "URL": ["See {v} for the form.", "Open {v} to log in."],
    "IP_ADDRESS": ["Login came from IP {v}.", "The server at {v} is down."],
    "UNIQUE_ID": ["Employee ID {v} requested leave.", "Claim number {v} was denied.",
                  "Case #{v} is closed."],
    "CREDIT_CARD": ["My card number is {v}.", "Charge {v} for the copay.",
                    "Visa {v} exp 04/27"],
    "IBAN_CODE": ["Transfer to IBAN {v} please.", "Pay into {v} today."],
    "API_KEY": ["Use api key {v} for the test.", "export OPENAI_API_KEY={v}", "token: {v}"],
    "AWS_ACCESS_KEY": ["The access key is {v}.", "aws_access_key_id = {v}"],
    "AWS_SECRET_KEY": ["aws_secret_access_key = {v}", "AWS secret: {v}"],
    "JWT_TOKEN": ["Authorization: Bearer {v}", "The session token {v} expired."],
    "PRIVATE_KEY": ["Here is the key:\n{v}\nkeep it safe."],
}

ENTITIES = sorted(TEMPLATES)


def sample(rng: random.Random, entity: str) -> Sample:
    template = rng.choice(TEMPLATES[entity])
    value = GENERATORS[entity](rng)
    start = template.index("{v}")
    text = template.replace("{v}", value)
    return Sample(text, [(start, start + len(value), entity)])


def join(samples: list[Sample]) -> Sample:
    text, labels = "", []
    for s in samples:
        if text:
            text += " "
        labels.extend((a + len(text), b + len(text), e) for a, b, e in s.labels)
        text += s.text
    return Sample(text, labels)


def documents(rng: random.Random, n: int, size: int) -> list[Sample]:
    """``n`` texts of about ``size`` characters: PII sentences among PII-free filler."""
    docs = []
    for i in range(n):
        parts: list[Sample] = []
        length = 0
        while length < size:
            if rng.random() < 0.5 or not parts:
                part = sample(rng, ENTITIES[(i + len(parts)) % len(ENTITIES)])
            else:
                part = Sample(rng.choice(FILLER))
            parts.append(part)
            length += len(part.text) + 1
        docs.append(join(parts))
    return docs


def leaked(text: str, label: tuple[int, int, str], spans: list[tuple[int, int]]) -> bool:
    """True if any letter or digit of the labeled value is outside every detected span."""
    start, end, _ = label
    covered = [False] * (end - start)
    for a, b in spans:
        for i in range(max(a, start), min(b, end)):
            covered[i - start] = True
    return any(not ok and text[start + i].isalnum() for i, ok in enumerate(covered))


def recall_by_entity(samples: list[Sample], spans: list[list[tuple[int, int]]]
                     ) -> dict[str, float]:
    hits: dict[str, list[int]] = {}
    for s, found in zip(samples, spans, strict=True):
        for label in s.labels:
            tally = hits.setdefault(label[2], [0, 0])
            tally[0] += not leaked(s.text, label, found)
            tally[1] += 1
    return {entity: caught / total for entity, (caught, total) in sorted(hits.items())}


def precision_by_entity(samples: list[Sample], found: list[list[tuple[int, int, str]]]
                        ) -> dict[str, float]:
    """Per detected type: share of detections that overlap some labeled value."""
    tally: dict[str, list[int]] = {}
    for s, detections in zip(samples, found, strict=True):
        for a, b, entity in detections:
            t = tally.setdefault(entity, [0, 0])
            t[0] += any(a < le and b > ls for ls, le, _ in s.labels)
            t[1] += 1
    return {entity: ok / total for entity, (ok, total) in sorted(tally.items())}


# Written after the recognizers were frozen, in phrasings the templates above do not use:
# a check that the figures are not just the templates echoing back. (value, type) pairs.
HELD_OUT_RAW: list[tuple[str, list[tuple[str, str]]]] = [
    ("Hi, this is Priscilla Vaughan, could you resend my lab results?",
     [("Priscilla Vaughan", "PERSON")]),
    ("Forward the invoice to accounts@harbourfreight.co.uk before noon.",
     [("accounts@harbourfreight.co.uk", "EMAIL_ADDRESS")]),
    ("text me on 07700 900461 when the courier arrives",
     [("07700 900461", "PHONE_NUMBER")]),
    ("Reach our Berlin desk at +49 (0)30 901820 anytime.",
     [("Berlin", "LOCATION"), ("+49 (0)30 901820", "PHONE_NUMBER")]),
    ("her social is 219-09-9999 per the intake form",
     [("219-09-9999", "US_SSN")]),
    ("Card on file: 4012-8888-8888-1881, please refund it.",
     [("4012-8888-8888-1881", "CREDIT_CARD")]),
    ("amex 3714 496353 98431 was declined twice",
     [("3714 496353 98431", "CREDIT_CARD")]),
    ("Wire the deposit to NL91ABNA0417164300 by Friday.",
     [("NL91ABNA0417164300", "IBAN_CODE")]),
    ("Patient was discharged on 2023-11-02 after observation.",
     [("2023-11-02", "DATE_TIME")]),
    ("DOB 7/4/1976, allergic to penicillin.",
     [("7/4/1976", "DATE_TIME")]),
    ("The chart (MRN: A00982341) shows two prior admissions.",
     [("A00982341", "MEDICAL_RECORD_NUMBER")]),
    ("Subscriber ID: ZXP442198801 under the family plan.",
     [("ZXP442198801", "HEALTH_PLAN_ID")]),
    ("She lives at 4417 Larkspur Lane, Apt 12, in Tacoma.",
     [("4417 Larkspur Lane, Apt 12", "STREET_ADDRESS"), ("Tacoma", "LOCATION")]),
    ("The upload came from 198.51.100.23 around midnight.",
     [("198.51.100.23", "IP_ADDRESS")]),
    ("Portal link: https://records.example-health.org/p/88123",
     [("https://records.example-health.org/p/88123", "URL")]),
    ("I accidentally pasted my key sk-live1234567890abcdefghijklmnopqrstuv in the chat",
     [("sk-live1234567890abcdefghijklmnopqrstuv", "API_KEY")]),
    ("AWS creds: AKIAJQ7RZ4EXAMPLE7QP and the secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     [("AKIAJQ7RZ4EXAMPLE7QP", "AWS_ACCESS_KEY"),
      ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET_KEY")]),
    ("Dr. Okonkwo will review the scan tomorrow.", [("Okonkwo", "PERSON")]),
    ("The insulin pump, serial no. PX-20931877, keeps alarming.",
     [("PX-20931877", "DEVICE_ID")]),
    ("My nursing license RN-7734112 lapses in June.", [("RN-7734112", "LICENSE_NUMBER")]),
    ("Routing number 021000021, account 000123456789.",
     [("021000021", "ACCOUNT_NUMBER"), ("000123456789", "ACCOUNT_NUMBER")]),
    ("Our zip is 30309 if you need it for shipping.", [("30309", "ZIP_CODE")]),
    ("ticket #88213-B was escalated by Gwendolyn Ashby",
     [("88213-B", "UNIQUE_ID"), ("Gwendolyn Ashby", "PERSON")]),
    ("The truck's VIN, 1FTFW1ET5DFC10312, is on the title.",
     [("1FTFW1ET5DFC10312", "VEHICLE_ID")]),
]


def held_out() -> list[Sample]:
    samples = []
    for text, values in HELD_OUT_RAW:
        labels = []
        for value, entity in values:
            start = text.index(value)
            labels.append((start, start + len(value), entity))
        samples.append(Sample(text, labels))
    return samples
