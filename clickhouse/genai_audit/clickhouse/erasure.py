"""GDPR Art. 17 erasure of one data subject, by crypto-shredding.

The audit trail stays immutable: no interaction row is updated or deleted. Instead the
subject's keystore row (pseudonym mapping + data key) is destroyed, so the subject's
content can no longer be decrypted, its commitments can no longer be checked against a
guess, and its pseudonym no longer links back to the user id. Metadata (tokens, cost,
tool, time) stays, so reports still add up; the ledger's hashes, computed over the
stored ciphertext, still verify.

Order, chosen so a crash at any point is repaired by running the erasure again:

0. refuse while a legal hold covers the subject (GDPR Art. 17(3)(e): data kept for legal
   claims; the held copies are encrypted under the same key);
1. count the subject's records;
2. append a PII-free tombstone to ``subject_erasures`` (reused if a crashed run left one)
   through the tamper-evident ledger, and sign a checkpoint over it before going on;
3. destroy the subject in the keystore, which keeps only when it happened.

Unlinkable afterwards: nothing left in the store, the keystore or the archive is derived
from the user id, so even whoever holds every surviving key cannot test a guessed user id
against the erased subject. The price: an erased user and a user never seen look the same,
so a repeat ``erase`` for the same user id cannot answer "already erased" from the user id.
It answers from the request id instead (the tombstone records it): run again with the same
``request_id`` and the result is ``ALREADY_ERASED`` with the first run's tombstone; without
it, ``UNKNOWN`` ("no live data subject: never seen, or already erased").

``erase_subject`` is the library call; ``genai-audit erase`` wraps it (the gateway has no
erasure API).
"""

from __future__ import annotations

import enum
import functools
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

from genai_audit.clickhouse.holds import list_holds
from genai_audit.clickhouse.ledger.leaf import SUBJECT_ERASURES
from genai_audit.clickhouse.ledger.log import Ledger
from genai_audit.clickhouse.ledger.session import append, current_user, ledger_session
from genai_audit.clickhouse.store import Store
from genai_audit.keystore import ErasureMarker, KeyStore

ERASED_TEXT = "[DATA ERASED PER GDPR ARTICLE 17]"
TOMBSTONE_COLUMNS = ("erasure_id", "erased_at", "tenant_id", "gdpr_pseudonymized_user_key",
                     "content_key_id", "request_id", "records_affected", "operator", "reason",
                     "tool_version", "db_user")

# The grounds of GDPR Art. 17(1) (and a data-subject request under 17(1) in general): a code
# instead of free text keeps the tombstone free of personal data by construction.
REASONS: dict[str, str] = {
    "subject-request": "Art. 17(1): erasure requested by the data subject",
    "no-longer-necessary": "Art. 17(1)(a): no longer necessary for the purpose",
    "consent-withdrawn": "Art. 17(1)(b): consent withdrawn",
    "objection": "Art. 17(1)(c): objection to processing",
    "unlawful-processing": "Art. 17(1)(d): unlawfully processed",
    "legal-obligation": "Art. 17(1)(e): erasure required by law",
    "child-consent": "Art. 17(1)(f): data of a child collected for online services",
}
# Answered from the ``subject_counts`` projection (migration 003): no scan of the records.
COUNT_SQL = ("SELECT count() FROM interactions WHERE tenant_id = {t:String}"
             " AND gdpr_pseudonymized_user_key = {p:String}")
_OPERATOR = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/#-]{1,128}$")


class ErasureError(ValueError):
    """An erasure request that cannot be carried out as given (bad reason, operator...)."""


class ErasureStatus(enum.StrEnum):
    ERASED = "erased"
    ALREADY_ERASED = "already_erased"  # a tombstone with this request id exists
    UNKNOWN = "unknown"  # no live subject with this user id (never seen, or erased)
    HELD = "held"  # under a legal hold (Art. 17(3)(e)): nothing was erased


@dataclass(frozen=True)
class ErasureResult:
    status: ErasureStatus
    tenant_id: str
    erasure_id: str = ""
    request_id: str = ""
    user_key: str = ""  # the (now unlinkable) pseudonym; "" when unknown
    records_affected: int = 0
    erased_at: str = ""
    held_by: tuple[str, ...] = ()  # ids of the active legal holds that block the erasure


@functools.cache
def tool_version() -> str:
    try:
        return metadata.version("genai-audit")
    except metadata.PackageNotFoundError:
        return "unknown"


def validate_request(reason: str, operator: str, request_id: str | None) -> None:
    if reason not in REASONS:
        raise ErasureError(f"unknown reason {reason!r}: use one of {', '.join(REASONS)}")
    if not _OPERATOR.match(operator):
        raise ErasureError("operator: 1-128 characters of letters, digits and . _ @ + -")
    if request_id is not None and not _REQUEST_ID.match(request_id):
        raise ErasureError("request id: 1-128 characters of letters, digits and . _ : / # -")


def erase_subject(store: Store, keys: KeyStore, *, tenant_id: str, user_id: str, reason: str,
                  operator: str, request_id: str | None = None,
                  ledger: Ledger | None = None) -> ErasureResult:
    """Erase one data subject of one tenant. Idempotent by ``request_id``; a user id with no
    live subject is reported as unknown (never seen and already erased look the same).

    The tombstone is written through ``ledger`` (a long-lived process's session over
    ``subject_erasures``, left open) or, by default, a session of its own whose checkpoint is
    signed before this returns."""
    validate_request(reason, operator, request_id)
    subject = keys.find_subject(tenant_id, user_id)
    if subject is None:
        done = _tombstone_of_request(store, tenant_id, request_id) if request_id else None
        if done is None:
            return ErasureResult(ErasureStatus.UNKNOWN, tenant_id)
        marker, records = done
        return ErasureResult(ErasureStatus.ALREADY_ERASED, tenant_id, marker.erasure_id,
                             marker.request_id, records_affected=records,
                             erased_at=marker.erased_at)
    holds = tuple(h.hold_id for h in list_holds(store, tenant_id)
                  if h.user_key in ("", subject.pseudonym))
    if holds:  # the held copies are encrypted under this key: destroying it would void them
        return ErasureResult(ErasureStatus.HELD, tenant_id, user_key=subject.pseudonym,
                             held_by=holds)
    records = int(store.scalar(COUNT_SQL, {"t": tenant_id, "p": subject.pseudonym}) or 0)
    tombstone = _existing_tombstone(store, tenant_id, subject.pseudonym)
    if tombstone is None:
        erasure_id = str(uuid.uuid4())
        erased_at = datetime.now(UTC)
        tombstone = ErasureMarker(erasure_id, request_id or erasure_id, erased_at.isoformat())
        row = [uuid.UUID(erasure_id), erased_at, tenant_id, subject.pseudonym, subject.key_id,
               tombstone.request_id, records, operator, reason, tool_version(),
               current_user(store)]
        with ledger_session(store, keys, SUBJECT_ERASURES, TOMBSTONE_COLUMNS, ledger) as lg:
            append(store, lg, [row])
    keys.destroy_subject(tenant_id, user_id, tombstone)
    return ErasureResult(ErasureStatus.ERASED, tenant_id, tombstone.erasure_id,
                         tombstone.request_id, subject.pseudonym, records, tombstone.erased_at)


def _existing_tombstone(store: Store, tenant_id: str, pseudonym: str) -> ErasureMarker | None:
    rows = store.rows(
        "SELECT toString(erasure_id), request_id, erased_at FROM subject_erasures"
        " WHERE tenant_id = {t:String} AND gdpr_pseudonymized_user_key = {p:String}"
        " ORDER BY erased_at LIMIT 1", {"t": tenant_id, "p": pseudonym})
    if not rows:
        return None
    erasure_id, request, erased_at = rows[0]
    return ErasureMarker(str(erasure_id), str(request), erased_at.isoformat())


def _tombstone_of_request(store: Store, tenant_id: str,
                          request_id: str) -> tuple[ErasureMarker, int] | None:
    """The tenant's first tombstone carrying ``request_id`` and its record count."""
    rows = store.rows(
        "SELECT toString(erasure_id), request_id, erased_at, records_affected"
        " FROM subject_erasures WHERE tenant_id = {t:String} AND request_id = {r:String}"
        " ORDER BY erased_at LIMIT 1", {"t": tenant_id, "r": request_id})
    if not rows:
        return None
    erasure_id, request, erased_at, records = rows[0]
    return ErasureMarker(str(erasure_id), str(request), erased_at.isoformat()), int(records)


def is_erased(store: Store, tenant_id: str, pseudonym: str) -> bool:
    """Whether a tombstone covers this pseudonym (its content reads as ERASED_TEXT)."""
    return _existing_tombstone(store, tenant_id, pseudonym) is not None
