"""Pattern recognizers: every text-detectable HIPAA Safe Harbor identifier, cards, IBANs,
international phones and secrets.

Each ``PatternSpec`` is a compiled regex with a base score, an optional validator
(checksum, calendar, octets) and context words that lift the score when they appear
just before (or shortly after) the match, as Presidio's context enhancer does. A spec
whose base score is below the default threshold only fires with context (a bare 8-digit
number is not an account number; "account no. 12345678" is).

Cheap prefilters skip whole families: nothing with digits is tried on a text without a
digit, the e-mail pattern needs an ``@``, and so on. Names and places come from the NER
model (see ``engine.py``); dates come from here (the model's DATE includes "last week").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from genai_audit.processor.redaction import addresses
from genai_audit.processor.redaction import validators as v

CONTEXT_BOOST = 0.35
CONTEXT_BEFORE = 48  # characters searched for context words before a match
CONTEXT_AFTER = 16


@dataclass(frozen=True)
class Finding:
    """One detected span of a text (offsets in the text it was found in)."""

    entity: str
    start: int
    end: int
    score: float
    source: str  # recognizer name: pattern name or "ner"


@dataclass(frozen=True)
class PatternSpec:
    name: str
    entity: str
    regex: re.Pattern[str]
    score: float
    context: tuple[str, ...] = ()
    validate: Callable[[str], bool] | None = None
    needs: str | tuple[str, ...] = "digit"  # prefilter: "digit", "" (always), or
    # substrings of which the lowercased text must hold one
    group: int = 0  # regex group that is the identifier (context keyword groups excluded)

    def applies(self, text: str, lowered: str, has_digit: bool) -> bool:
        if self.needs == "digit":
            return has_digit
        if isinstance(self.needs, tuple):
            return any(word in lowered for word in self.needs)
        return not self.needs or self.needs in lowered

    def find(self, text: str, lowered: str) -> Iterator[Finding]:
        for match in self.regex.finditer(text):
            start, end = match.span(self.group)
            if start == end:
                continue
            value = text[start:end]
            if self.validate is not None and not self.validate(value):
                continue
            score = self.score
            if self.context and _has_context(lowered, start, end, self.context):
                score = min(1.0, score + CONTEXT_BOOST)
            yield Finding(self.entity, start, end, score, self.name)


def _has_context(lowered: str, start: int, end: int, words: tuple[str, ...]) -> bool:
    window = lowered[max(0, start - CONTEXT_BEFORE):start] + " " + lowered[end:end + CONTEXT_AFTER]
    return any(word in window for word in words)


def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_I = re.IGNORECASE
_SEP = r"[ \-.]?"
# English, German, French and Spanish month names and their usual abbreviations.
_MONTHS = (r"(?:jan(?:uary|uar|vier)?|feb(?:ruary|ruar)?|f[ée]v(?:rier)?|mar(?:ch|s)?|m[äa]rz|"
           r"apr(?:il)?|avr(?:il)?|may|mai|june?|juni|juin|july?|juli|juil(?:let)?|"
           r"aug(?:ust)?|ao[uû]t|sep(?:t(?:ember|embre)?)?|oct(?:ober|obre)?|okt(?:ober)?|"
           r"nov(?:ember|embre)?|d[ée]c(?:ember|embre)?|dez(?:ember)?|enero|febrero|marzo|"
           r"abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre)")
_WEEKDAY = (r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day|\.)?|"
            r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|lundi|mardi|"
            r"mercredi|jeudi|vendredi|samedi|dimanche|lunes|martes|mi[ée]rcoles|jueves|"
            r"viernes|s[áa]bado|domingo")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th|er|\.)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
# an optional time after a date: 10:38, 10:38:35, 01:49 AM, T10:38:35Z
_TIME = r"(?:(?:[T ]|,? (?:at |um |à |a las )?)\d{1,2}[:h]\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?|Z)?)?"
# an identifier after a label: letters/digits with inner - or /, at least one digit
_ID = r"((?=[A-Z0-9\-/]*\d)[A-Z0-9][A-Z0-9\-/]{3,24}[A-Z0-9])"
_LABEL_GAP = r"(?:\s*(?:number|no\.?|num|#|id|identifier)?)?\s*(?:is|:|#|=|-)?\s*"

YEAR_SCORE = 0.3
_EXT = r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,6})?"  # a phone's extension
_CARD_CTX = ("card", "visa", "mastercard", "amex", "credit", "debit", "cc", "jcb", "diners",
             "discover", "maestro", "karte", "carte", "tarjeta")
_PHONE_CTX = ("phone", "tel", "call", "cell", "mobile", "fax", "contact", "reach", "text me",
              "whatsapp", "number")

SPECS: tuple[PatternSpec, ...] = (
    # -- secrets: these leak a system, not a person, and are never wanted in a log ------
    PatternSpec("private_key_block", "PRIVATE_KEY", _c(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)"), 1.0, needs="private key"),
    PatternSpec("openai_key", "API_KEY", _c(r"\bsk-(?:proj-|svcacct-|admin-|ant-[a-z0-9]+-)?"
                                           r"[A-Za-z0-9_\-]{20,}"), 0.95, needs="sk-"),
    PatternSpec("vendor_token", "API_KEY", _c(
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9\-]{10,}"
        r"|AIza[0-9A-Za-z_\-]{35}|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_\-]{20}"
        r"|hf_[A-Za-z0-9]{30,}|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,})"), 0.95, needs=""),
    PatternSpec("aws_access_key", "AWS_ACCESS_KEY", _c(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|"
                                                      r"ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"), 0.95),
    PatternSpec("aws_secret_key", "AWS_SECRET_KEY", _c(
        r"(?<![A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"), 0.2,
        ("aws", "secret", "access key"), v.has_digit_and_letter),
    PatternSpec("jwt", "JWT_TOKEN", _c(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\."
                                       r"[A-Za-z0-9_\-]{8,}"), 0.95, needs="eyj"),
    PatternSpec("bearer_secret", "API_KEY", _c(
        r"(?:api[_\- ]?key|secret|token|password|passwd|pwd|bearer)[\"']?\s*[:=]?\s*[\"']?"
        r"([A-Za-z0-9_\-+/=.]{16,})", _I), 0.6, validate=v.has_digit_and_letter, group=1,
        needs=("key", "secret", "token", "passw", "pwd", "bearer")),
    # -- contact -----------------------------------------------------------------------
    PatternSpec("email", "EMAIL_ADDRESS", _c(
        r"(?<![\w.])[\w!#$%&'*+/=?^`{|}~\-]+(?:\.[\w!#$%&'*+/=?^`{|}~\-]+)*"
        r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\b"), 1.0, needs="@"),
    PatternSpec("url", "URL", _c(
        r"\b(?:https?://|ftp://|www\.)[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]", _I), 0.9,
        needs=("http", "ftp:", "www.")),
    PatternSpec("phone_intl", "PHONE_NUMBER", _c(
        r"(?<![\w+])(?:\+|00)[1-9]\d{0,3}(?:[ \-.]?\(?\d{1,5}\)?){2,6}" + _EXT + r"(?!\w)"),
        0.75,
        _PHONE_CTX, v.phone),
    PatternSpec("phone_national", "PHONE_NUMBER", _c(
        r"(?<![\w+\-./])(?:\(\d{2,5}\)\s?|\d{2,5}[ \-.])\d{2,4}(?:[ \-.]\d{2,4}){1,3}" + _EXT +
        r"(?!\w|-\d|\.\d)"),
        0.55, _PHONE_CTX, v.phone),
    PatternSpec("phone_context", "PHONE_NUMBER", _c(
        r"(?<![\w+\-./])\(?\d{2,4}\)?(?:[ \-.]\d{2,8}){1,4}(?![\w\-]|[.,]\d)"), 0.2,
        _PHONE_CTX, v.short_phone),
    PatternSpec("phone_compact", "PHONE_NUMBER", _c(r"(?<![\w\-])\d{10,11}(?![\w\-])"), 0.2,
                _PHONE_CTX),
    PatternSpec("ip_v4", "IP_ADDRESS", _c(
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)"
        r"(?:/\d{1,2})?(?![\d.]*\d)"), 0.8, ("ip", "address", "host", "server")),
    PatternSpec("ip_v6", "IP_ADDRESS", _c(
        r"(?<![\w:.])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{3,39}(?:%\w+)?(?![\w:])"), 0.8,
        ("ip",), v.ip_address, needs=":"),
    PatternSpec("mac", "DEVICE_ID", _c(r"\b[0-9A-Fa-f]{2}(?:[:\-][0-9A-Fa-f]{2}){5}\b"), 0.8),
    # -- money -------------------------------------------------------------------------
    PatternSpec("credit_card", "CREDIT_CARD", _c(
        r"(?<![\d\-])\d{4}(?:[ \-]?\d{2,4}){2,4}(?:[ \-]?\d{1,3})?(?![\d\-])"), 0.9,
        _CARD_CTX, v.credit_card),
    PatternSpec("card_luhn", "CREDIT_CARD", _c(
        r"(?<![\d\-])\d{4}(?:[ \-]?\d{2,4}){2,4}(?:[ \-]?\d{1,3})?(?![\d\-])"), 0.45,
        _CARD_CTX, v.luhn_number),
    PatternSpec("iban", "IBAN_CODE", _c(
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), 1.0, ("iban",), v.iban),
    PatternSpec("account_number", "ACCOUNT_NUMBER", _c(
        r"\b(?:account|acct|a/c|routing|aba|bank)" + _LABEL_GAP + r"(\d[\d\- ]{4,18}\d)\b", _I),
        0.7, validate=lambda s: v.has_digits(s, 6), group=1,
        needs=("account", "acct", "a/c", "routing", "aba", "bank")),
    # -- government and health identifiers ---------------------------------------------
    PatternSpec("us_ssn", "US_SSN", _c(r"(?<![\d\-])\d{3}([ \-.]?)\d{2}\1\d{4}(?![\d\-])"), 0.5,
                ("ssn", "social security", "social sec"), v.us_ssn),
    PatternSpec("medical_record", "MEDICAL_RECORD_NUMBER", _c(
        r"\b(?:MRN|medical record|med rec|chart|patient)" + _LABEL_GAP + _ID, _I), 0.85, group=1,
        needs=("mrn", "medical record", "med rec", "chart", "patient")),
    PatternSpec("health_plan", "HEALTH_PLAN_ID", _c(
        r"\b(?:member|subscriber|beneficiary|policy|insurance|health plan|medicaid|medicare|"
        r"insurer|plan|group)" + _LABEL_GAP + _ID, _I), 0.75, group=1,
        needs=("member", "subscriber", "beneficiary", "policy", "insur", "plan", "medica",
               "group")),
    PatternSpec("medicare_mbi", "HEALTH_PLAN_ID", _c(
        r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?"
        r"[AC-HJKMNP-RT-Y]{2}\d\d\b"), 0.6, ("medicare", "mbi", "beneficiary")),
    PatternSpec("license", "LICENSE_NUMBER", _c(
        r"\b(?:licen[cs]e|certificate|certification|permit|DEA|NPI|registration|passport|"
        r"driver'?s?|DL)" + _LABEL_GAP + _ID, _I), 0.8, group=1,
        needs=("licen", "certific", "permit", "dea", "npi", "registration", "passport",
               "driver", "dl")),
    PatternSpec("dea", "LICENSE_NUMBER", _c(r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b"), 0.3,
                ("dea", "prescriber", "licen")),
    PatternSpec("vin", "VEHICLE_ID", _c(r"\b[A-HJ-NPR-Z0-9]{17}\b"), 0.6,
                ("vin", "vehicle", "car", "chassis"), v.vin),
    PatternSpec("plate", "VEHICLE_ID", _c(
        r"\b(?:license plate|licence plate|plate|registration plate|tag)" + _LABEL_GAP +
        r"([A-Z0-9][A-Z0-9\- ]{1,8}[A-Z0-9])\b", _I), 0.75, group=1, needs=("plate", "tag")),
    PatternSpec("device", "DEVICE_ID", _c(
        r"\b(?:serial|device|IMEI|UDID|implant|pacemaker|pump|meid|s/n|sn)" + _LABEL_GAP + _ID,
        _I), 0.75, group=1, needs=("serial", "device", "imei", "udid", "implant", "pacemaker",
                                   "pump", "meid", "s/n", "sn")),
    PatternSpec("imei", "DEVICE_ID", _c(
        r"(?<![\d\-])\d{2}[ \-]?\d{6}[ \-]?\d{6}[ \-]?\d(?![\d\-])"), 0.3,
        ("imei", "device", "phone"), v.imei),
    # -- EU national identifiers ------------------------------------------------------------
    PatternSpec("es_dni_nie", "NATIONAL_ID", _c(r"\b(?:\d{8}|[XYZ]-?\d{7})-?[A-Z]\b"), 0.7,
                ("dni", "nie", "nif", "documento", "identidad"), v.es_dni),
    PatternSpec("fr_nir", "NATIONAL_ID", _c(
        r"\b[12][ .]?\d{2}[ .]?(?:0[1-9]|1[0-2]|[2-9]\d)[ .]?(?:\d{2}|2[AB])[ .]?\d{3}[ .]?"
        r"\d{3}[ .]?\d{2}\b"), 0.7, ("sécurité sociale", "securite sociale", "nir", "insee",
                                   "sécu"), v.fr_nir),
    PatternSpec("de_id_card", "NATIONAL_ID", _c(
        r"\b[CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8}\d?\b"), 0.2,
        ("ausweis", "reisepass", "pass-nr", "passnummer", "id card", "identity card"),
        v.has_digits),
    PatternSpec("tax_id", "NATIONAL_ID", _c(r"(?<![\d\-])\d{11}(?![\d\-])"), 0.2,
                ("steuer", "idnr", "tax id", "tin", "fiscal")),
    PatternSpec("unique_id", "UNIQUE_ID", _c(
        r"\b(?:employee|staff|student|customer|client|case|claim|ticket|badge|national|tax|"
        r"TIN|EIN|NHS|user|reference|ref)" + _LABEL_GAP + _ID, _I), 0.6, group=1),
    # -- places and dates --------------------------------------------------------------
    PatternSpec("street_address", "STREET_ADDRESS", _c(
        r"\b\d{1,6}(?:-\d{1,4})?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z'\-]*\.?\s+){1,4}"
        r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|"
        r"way|terrace|ter|parkway|pkwy|highway|hwy|circle|cir|square|sq|trail|trl|close|"
        r"crescent|row|strasse|straße)\b\.?(?:,?\s*(?:apt|apartment|suite|ste|unit|#|flat)\.?"
        r"\s*#?[A-Z0-9\-]+)?", _I), 0.85),
    PatternSpec("address_block", "STREET_ADDRESS", addresses.ADDRESS_BLOCK, 0.85),
    PatternSpec("street_line", "STREET_ADDRESS", addresses.STREET_LINE, 0.6),
    PatternSpec("po_box", "STREET_ADDRESS", _c(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", _I), 0.85),
    PatternSpec("zip_state", "ZIP_CODE", _c(
        r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|"
        r"PA|RI|S[CD]|T[NX]|UT|V[AT]|W[AIVY])\s+(\d{5}(?:-\d{4})?)\b"), 0.9, group=1),
    PatternSpec("zip_context", "ZIP_CODE", _c(r"(?<![\d\-])\d{5}(?:-\d{4})?(?![\d\-])"), 0.2,
                ("zip", "postal", "postcode", "post code")),
    PatternSpec("uk_postcode", "ZIP_CODE", _c(
        r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[ABD-HJLNP-UW-Z]{2}\b"), 0.7, ("postcode", "post code")),
    PatternSpec("date_numeric", "DATE_TIME", _c(
        r"(?<![\d/.\-])(?:\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})|\d{4}-\d{1,2}-\d{1,2})"
        r"(?![\d/\-]|\.\d)" + _TIME, _I), 0.75,
        ("born", "birth", "dob", "date", "admitted", "discharged", "died", "death", "visit"),
        v.numeric_date),
    PatternSpec("date_month_first", "DATE_TIME", _c(
        rf"\b(?:(?:{_WEEKDAY}),?\s+)?{_MONTHS}\.?\s+{_DAY}(?:,?\s+{_YEAR})?\b{_TIME}", _I), 0.75,
        ("born", "birth", "dob", "admitted", "discharged", "died", "on"), needs=""),
    PatternSpec("date_day_first", "DATE_TIME", _c(
        rf"\b(?:(?:{_WEEKDAY}),?\s+)?{_DAY}(?:\s+(?:of|de))?\s+{_MONTHS}\.?"
        rf"(?:,?\s+(?:de\s+)?{_YEAR})?\b{_TIME}", _I), 0.75,
        ("born", "birth", "dob", "admitted", "discharged", "died")),
    # a year or a weekday alone: kept at the default threshold (Safe Harbor keeps the year);
    # a policy that wants them sets thresholds.DATE_TIME at or below YEAR_SCORE
    PatternSpec("year_or_weekday", "DATE_TIME", _c(
        rf"(?<![\d/.\-]){_YEAR}(?![\d/\-]|\.\d)|\b(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day|"
        r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|lundi|mardi|mercredi|"
        r"jeudi|vendredi|samedi|dimanche|lunes|martes|mi[ée]rcoles|jueves|viernes|s[áa]bado|"
        r"domingo)\b", _I), YEAR_SCORE,
        needs=""),
    PatternSpec("date_month_year", "DATE_TIME", _c(
        rf"\b{_MONTHS}\.?,?\s+(?:de\s+)?{_YEAR}\b", _I), 0.7, needs=""),
    # -- ages: a number with its unit, or after "aged", "turned", "age of" -------------------
    PatternSpec("age_unit", "AGE", _c(
        r"\b(\d{1,3})(?=(?:\s|-)?(?:years?|yrs?)(?:\s|-)old\b|\s?(?:y/o|y\.o\.|yo)\b|"
        r"\s(?:jahre?\s+alt|ans\b|a[ñn]os\b))", _I), 0.8, validate=v.age),
    PatternSpec("age_label", "AGE", _c(
        r"\b(?:aged?|turn(?:s|ed|ing)?|age of|ages|alter|[âa]g[ée]e?\s+de|edad(?:\s+de)?)"
        r"\s*:?\s+(\d{1,3})\b(?![.,:/]\d)", _I), 0.7, validate=v.age, group=1,
        needs=("age", "turn", "alter", "âg", "edad")),
    # -- titles before a name (the policy's TITLE type) -----------------------------------
    PatternSpec("title", "TITLE", _c(
        r"\b(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Sr|Sra|Srta|Herr|Frau|Mme|Mlle)\.?(?=\s+[A-Z])"),
        0.6, needs=""),
)

# Names with a title: the NER model misses some single surnames ("Dr. Okafor").
TITLED_NAME = PatternSpec("titled_name", "PERSON", _c(
    r"\b(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Sr|Sra|Herr|Frau|Mme|M)\.?\s+"
    r"((?:[A-Z][a-z'\-]+|[A-Z]\.)(?:\s+[A-Z][a-z'\-]+){0,2})"), 0.75, needs="", group=1)

# A capitalized name after words that announce one ("my name is", "call me", "last name?").
_NAME_WORD = r"[A-ZÀ-ÖØ-Þ][\w'\u2019\-]+"
_PARTICLE = r"(?:de|del|de la|da|di|du|van|von|der|le|la)"
NAME_CUE = PatternSpec("name_cue", "PERSON", _c(
    r"(?i:\b(?:my name is|name is|name's|last name\??|first name\??|surname\??|call me|"
    r"calls me|called me|named (?:him|her)|i'm|i am|this is|under|my kid|my son|my daughter|"
    r"change it to|correct it to|name:|names? on the account is|said|says|asked|told|"
    r"starring|featuring|features|(?:was|is|were) called|named|commenter|"
    r"(?:directed|written|sung|produced|performed|composed|signed|reported|arranged) by:?))"
    r"[ \t]+"
    rf"((?:{_PARTICLE}[ \t]+)*{_NAME_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)?{_NAME_WORD}){{0,3}})"),
    0.6, needs=("name", "call", "i'm", "i am", "this is", "under", "kid", "son", "daughter",
                "change it", "correct it", "said", "says", "asked", "told", "starring",
                "featur", "commenter", " by"), group=1)

# A speaker's name opening a line or sentence before a colon (``Pauline: What a wife.``),
# when it is not a form's label (``Name:``, ``Address:``, ``Subject:``).
FORM_LABELS = frozenset("""
name names address addresses phone telephone tel mobile fax email e-mail mail date time
subject re note notes to from cc bcc billing shipping title company tel website web url dob
age gender sex city country state zip postal code id account question answer q a user
assistant system summary description comment comments status total price error warning info
example step tip result output input response reason ref reference order invoice patient
diagnosis message details contact location position role department type category source
warning update important attention action location occupation job birthday signature sent
""".split())
# Words that open a line before a colon in chat and model output (``Noted: ...``,
# ``Update: ...``, ``Warning: ...``): a single capitalized word before a colon is a speaker
# only when it is none of these and not a verb or noun form (``-ed``, ``-ing``, ``-tion``,
# ``-ment``, ``-ness``; names such as Alfred and Mildred excepted).
CHAT_OPENERS = frozenset("""
noted thanks thank okay ok sure yes no yeah nope hello hi hey dear done update fixed fix
answer short long steps plan draft final recap context goal task tasks problem solution
example examples conclusion background overview caution tldr ps nb fyi edit edited note
follow followup next first second third then also finally options option pros cons result
hint question reply correction clarification translation agenda outcome verdict risk risks
""".split())
_WORD_FORMS = ("ed", "ing", "tion", "sion", "ment", "ness")
_NAMES_OF_THAT_FORM = ("fred", "dred", "irving", "sterling", "channing")  # Alfred, Mildred...


def _speaker(value: str) -> bool:
    words = value.split()
    first = words[0].lower()
    if first in FORM_LABELS or first in CHAT_OPENERS:
        return False
    if len(words) > 1 or len(first) <= 4:
        return True
    return not first.endswith(_WORD_FORMS) or first.endswith(_NAMES_OF_THAT_FORM)


SPEAKER = PatternSpec("speaker", "PERSON", _c(
    rf"(?m)(?:^|(?<=[.!?\"]) )[ \t]*({_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)[ \t]*:(?=[ \t]*[\"\w])"),
    0.6, needs=":", group=1, validate=_speaker)

# A surname after its particle (``de Sauvage``, ``del Peláez``, ``van der Berg``); a name
# addressed at the end of a sentence (``Remember me, Xavier?``); a name before a verb that
# only a person does (``Hortense is from``, ``Alfred had given``, ``Eugène Guérin lives at``).
PARTICLE_NAME = PatternSpec("particle_name", "PERSON", _c(
    rf"(?<![\w'\u2019])((?:van der|van den|de la|del|van|von|du|de|da|di|zu)[ \t]+{_NAME_WORD})"),
    0.6, needs=("de ", "del ", "van ", "von ", "du ", "da ", "di ", "zu "), group=1)
VOCATIVE = PatternSpec("vocative", "PERSON", _c(
    rf",[ \t]+({_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)(?=[?!])"), 0.6, needs=("?", "!"), group=1,
    validate=lambda value: value.split()[0].lower() not in FORM_LABELS)
PERSON_VERB = PatternSpec("person_verb", "PERSON", _c(
    rf"(?:^|(?<=[.!?\"] )|(?<=\n))"
    rf"({_NAME_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)?{_NAME_WORD}){{0,3}})"
    r"(?=[ \t]+(?:lives|lived|is from|was from|was born|works|worked|wrote|spent|"
    r"had given|has given)\b)", re.MULTILINE), 0.6, needs="",  group=1,
    validate=lambda value: value.split()[0].lower() not in FORM_LABELS)

ALL_SPECS: tuple[PatternSpec, ...] = (*SPECS, TITLED_NAME, NAME_CUE, SPEAKER, PARTICLE_NAME,
                                      VOCATIVE, PERSON_VERB)

ENTITY_TYPES: frozenset[str] = frozenset(
    {spec.entity for spec in ALL_SPECS} | {"PERSON", "LOCATION", "ORGANIZATION", "NRP",
                                            "PHONE_NUMBER"})

_DIGIT = re.compile(r"\d")


def find_patterns(text: str, specs: tuple[PatternSpec, ...] = ALL_SPECS) -> list[Finding]:
    """Every pattern finding of one text (overlaps resolved later)."""
    lowered = text.lower()
    has_digit = _DIGIT.search(text) is not None
    found: list[Finding] = []
    for spec in specs:
        if spec.applies(text, lowered, has_digit):
            found.extend(spec.find(text, lowered))
    return found
