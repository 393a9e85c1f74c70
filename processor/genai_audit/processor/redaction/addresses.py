"""Postal addresses as written in English, German, French and Spanish: a street line and the
place lines that follow it (city, state, postcode, country), caught as one span.

A street line is a house number and capitalized words (``303 Richard Key``), a street word
of one of the four languages (``912, chemin Claudine Peron``, ``Wagnergasse 70-34``,
``Ronda de Graciana Duran 68``) or a flat before the street (``Flat 03Q``). It may carry a
secondary unit (``Apt. 981``, ``Puerta 5``). The place lines after it are taken while
they look like places: a postcode with a town (``83038 Luckenwalde``, ``León, 44500``,
``Stephenview, TN 72327``, ``W8G 7JR``) or, before such a line, up to two short lines of
capitalized words (``West Glen``).
"""

from __future__ import annotations

import re

_CAP = r"[A-ZÀ-ÖØ-Þ][\w'\u2019\-.]*"
_UNIT = (r"(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Studio|Puerta|Piso|Planta|Bajo|"
         r"Escalera|Etage|App\.?|Bât\.?|Wohnung)\s*[\w\-]{1,6}")
_STREET_WORDS_LOWER = (r"(?:rue|chemin|boulevard|avenue|all[ée]e|impasse|place|quai|route|"
                       r"voie|cours|passage|square|calle|avenida|plaza|paseo|rambla|camino|"
                       r"vial|ronda|pasaje|carrer|callej[óo]n|cuesta|glorieta|traves[íi]a|"
                       r"v[íi]a|urbanizaci[óo]n|carretera|acceso|alameda|bulevar|cañada|"
                       r"pol[íi]gono|sector|senda|pasadizo|c\.)")
_GERMAN_STREET = (r"[A-ZÄÖÜ][\w\-]*(?:[Ss]tra(?:ß|ss)e|[Ss]tr\.|[Gg]asse|[Ww]eg|[Pp]latz|[Aa]llee|"
                  r"[Rr]ing|[Dd]amm|[Uu]fer)")
_NUMBER = r"\d{1,6}[a-zA-Z]?(?:[-/]\d{1,4}[a-zA-Z]?)?"

_STREET = (
    rf"(?:{_NUMBER},?\s+(?:(?i:{_STREET_WORDS_LOWER})\s+)?(?:(?:de|del|de la|des|du|la|le|von|"
    rf"der)\s+)?{_CAP}(?:[ \t]+{_CAP}){{0,4}}"  # 303 Richard Key / 912, chemin Claudine Peron
    rf"|(?:(?i:{_STREET_WORDS_LOWER})|{_GERMAN_STREET})"
    rf"(?:[ \t]+(?:de|del|de la|des|du|la|le|{_CAP})){{0,5}}(?:[ \t]+{_NUMBER})?"
    rf"|PSC \d{{3,5}}, Box \d{{3,5}}|(?:USNS|USNV|USS|USCGC) {_CAP}"
    rf"|{_GERMAN_STREET}[ \t]+{_NUMBER}"
    rf"|{_UNIT})"
    rf"(?:[ \t,]+{_UNIT})?"
)
_POSTAL = (r"(?:[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"  # GB postcode
           r"|[AFD]PO A[AEP] \d{5}"  # US military
           rf"|\d{{4,5}}[ \t]+{_CAP}(?:[ \t\-]+{_CAP}){{0,3}}"  # 83038 Luckenwalde
           rf"|{_CAP}(?:[ \t\-]+{_CAP}){{0,3}},?[ \t]+(?:[A-Z]{{2}}[ \t]+)?\d{{5}}(?:-\d{{4}})?"
           r"(?:[ \t]+[A-Z][A-Z0-9]{1,3}\s?\d[A-Z]{2})?)")  # City, ST 72327 / León, 44500
_PLACE = rf"{_CAP}(?:[ \t\-]+(?:{_CAP}|de|del|la|le|sur|am|an|der)){{0,4}}"

ADDRESS_BLOCK = re.compile(
    rf"\b{_STREET}(?:\s*[\n,]\s*{_PLACE}){{0,2}}\s*[\n,]\s*{_POSTAL}"
    rf"(?:\s*[\n,]\s*{_PLACE}(?:[ \t]+\d{{4,5}})?)?")
STREET_LINE = re.compile(rf"\b{_STREET}(?=\s*(?:\n|$|,|\.|\?|!))")
