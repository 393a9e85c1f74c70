"""Checksums and sanity checks that turn a regex candidate into a finding.

Pure functions on the matched text; each returns True when the candidate is plausible.
Kept apart from the patterns so each rule can be tested on its own.
"""

from __future__ import annotations

import ipaddress
import re

_NON_DIGITS = re.compile(r"\D")
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
_EXTENSION = re.compile(r"\s?(?:x|ext)", re.IGNORECASE)


def digits(text: str) -> str:
    return _NON_DIGITS.sub("", text)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_brand_ok(number: str) -> bool:
    """A known issuer prefix for the number's length (every major brand, 12-19 digits)."""
    n = len(number)
    two, four, six = int(number[:2]), int(number[:4]), int(number[:6])
    if number[0] == "4":  # Visa 13/16/19
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard incl. the 2-series
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if number.startswith("6011") or two == 65 or 644 <= int(number[:3]) <= 649 or (
            622126 <= six <= 622925):  # Discover
        return 16 <= n <= 19
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= int(number[:3]) <= 305 or two in (36, 38, 39) or number.startswith("3095"):
        return 14 <= n <= 19  # Diners Club
    if two == 62 or two == 81:  # UnionPay
        return 16 <= n <= 19
    if two in (50, 56, 57, 58, 63, 67) or number.startswith("6759"):  # Maestro
        return 12 <= n <= 19
    if number.startswith(("606282", "3841")):  # Hipercard
        return n in (13, 16, 19)
    return number.startswith(("2200", "2201", "2202", "2203", "2204"))  # Mir


def credit_card(text: str) -> bool:
    number = digits(text)
    return 12 <= len(number) <= 19 and _card_brand_ok(number) and luhn_ok(number)


def luhn_number(text: str) -> bool:
    """13-19 digits passing Luhn, whatever the issuer (JCB 15, private-label cards)."""
    number = digits(text)
    return 13 <= len(number) <= 19 and len(set(number)) > 2 and luhn_ok(number)


def imei(text: str) -> bool:
    number = digits(text)
    return len(number) == 15 and luhn_ok(number)


def us_ssn(text: str) -> bool:
    number = digits(text)
    if len(number) != 9 or len(set(number)) == 1:
        return False
    area, group, serial = number[:3], number[3:5], number[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# ISO 13616 lengths per country (the registry's own table).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban(text: str) -> bool:
    code = _NON_ALNUM.sub("", text).upper()
    if IBAN_LENGTHS.get(code[:2]) != len(code):
        return False
    rearranged = code[4:] + code[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni(text: str) -> bool:
    """Spanish DNI (8 digits) or NIE (X/Y/Z and 7 digits) with its check letter."""
    code = _NON_ALNUM.sub("", text).upper()
    body = "XYZ".index(code[0]).__str__() + code[1:-1] if code[0] in "XYZ" else code[:-1]
    return body.isdigit() and _DNI_LETTERS[int(body) % 23] == code[-1]


def fr_nir(text: str) -> bool:
    """French social security number (NIR): 13 characters and a key of 97 - n mod 97
    (Corsica's 2A/2B count as 19/18)."""
    code = _NON_ALNUM.sub("", text).upper()
    body = code[:13].replace("2A", "19", 1) if code[5:7] == "2A" else code[:13]
    body = body.replace("2B", "18", 1) if code[5:7] == "2B" else body
    return len(code) == 15 and body.isdigit() and 97 - int(body) % 97 == int(code[13:])


def ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def phone(text: str) -> bool:
    """7-15 digits (E.164 caps at 15); a number without a ``+`` needs at least 10."""
    text = _EXTENSION.split(text, maxsplit=1)[0]
    count = len(digits(text))
    if text.lstrip("(").startswith("+") or text.startswith("00"):
        return 8 <= count <= 15
    return 10 <= count <= 15 and len(set(digits(text))) > 2


def short_phone(text: str) -> bool:
    """7-12 digits in groups (``455 6186``, ``96 835939``): a phone only with context."""
    number = digits(text)
    return 7 <= len(number) <= 12 and len(set(number)) > 2


def age(text: str) -> bool:
    return 0 < int(digits(text) or 0) <= 125


def has_digit_and_letter(text: str) -> bool:
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


def has_digits(text: str, minimum: int = 4) -> bool:
    return sum(c.isdigit() for c in text) >= minimum


_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_VALUES = {**{str(d): d for d in range(10)},
               **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
               **dict(zip("JKLMN", range(1, 6), strict=True)), "P": 7, "R": 9,
               **dict(zip("STUVWXYZ", range(2, 10), strict=True))}


def vin(text: str) -> bool:
    """17 characters, digits and letters (no I, O, Q); the North-American check digit if
    position 9 holds one, which most VINs world-wide do."""
    code = text.upper()
    if len(code) != 17 or not has_digit_and_letter(code):
        return False
    total = sum(_VIN_VALUES[c] * w for c, w in zip(code, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return code[8] == check or sum(c.isdigit() for c in code) >= 6


def month_day(month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= 31


def numeric_date(text: str) -> bool:
    """``MM/DD/YYYY``, ``DD.MM.YYYY``, ``YYYY-MM-DD`` and two-digit years: a real calendar day."""
    date = re.split(r"[\sT,]", text, maxsplit=1)[0]  # the time after it, if any, is free
    parts = [int(p) for p in re.split(r"[/.\-]", date) if p]
    if len(parts) != 3:
        return False
    if parts[0] > 31:  # ISO: year first
        return month_day(parts[1], parts[2])
    a, b = parts[0], parts[1]
    return month_day(a, b) or month_day(b, a)
