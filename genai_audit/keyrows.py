"""The keystore's rows, authenticated: a MAC under the master key over each row and its identity.

Wrapping a data key already binds it to its (tenant, pseudonym, key id) (the AEAD's
associated data), but not to the row's other columns: the ``lookup`` that maps a user id
to the row, its creation time and its ``erased_before``. Anyone who can write the SQLite
file could swap two subjects' lookups, and ``erase`` of one user would then destroy the
other's key. So each subject row (and each erasure time) carries
``HMAC-SHA256(mac key, format || every column || its table)``; the MAC key is a random
secret wrapped by the master key (``integrity:rows`` in ``secrets``), so without the master
key (or the KMS) no row can be made, moved or edited unnoticed. The keystore checks the MAC
of every row it reads before using it; a mismatch raises ``KeyStoreIntegrityError``,
naming what does not fit but no secret.

What a MAC cannot show: a row deleted, or a whole older copy of the file put back. A
deleted subject row reads as a missing key (``show`` says ``key_missing`` where no
tombstone covers it); an old copy of the file brings erased keys back, which is why
keystore backups must expire within the erasure deadline (docs/compliance.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

FORMAT = "3"
MAC_SECRET = "integrity:rows"  # noqa: S105 - the name of a secrets row, not a secret
_SUBJECT = b"subject-row/" + FORMAT.encode()
_ERASURE = b"erasure-row/" + FORMAT.encode()


class KeyStoreError(Exception):
    """The keystore cannot be read or written, or its master key does not fit."""


class KeyStoreIntegrityError(KeyStoreError):
    """A keystore row does not match its MAC (or has none): it was made, moved or edited by
    someone without the master key. The message names the kind of mismatch, never a key."""


def _message(tag: bytes, fields: Sequence[str | bytes | None]) -> bytes:
    """An unambiguous encoding: each field length-prefixed, None distinct from empty."""
    parts = [tag]
    for value in fields:
        if value is None:
            parts.append(b"\xff" * 4)
            continue
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        parts.append(len(data).to_bytes(4, "big") + data)
    return b"".join(parts)


def subject_mac(key: bytes, tenant: str, lookup: str, pseudonym: str, key_id: str,
                wrapped: bytes, created_at: str, erased_before: str | None) -> bytes:
    return hmac.digest(key, _message(_SUBJECT, (tenant, lookup, pseudonym, key_id, wrapped,
                                                created_at, erased_before)), "sha256")


def erasure_mac(key: bytes, tenant: str, erasure_id: str, erased_at: str) -> bytes:
    return hmac.digest(key, _message(_ERASURE, (tenant, erasure_id, erased_at)), "sha256")


def check_mac(expected: bytes, stored: bytes | None, where: str, kind: str) -> None:
    """Raise ``KeyStoreIntegrityError`` unless ``stored`` is ``expected``. ``kind`` says
    what a mismatch means for this row (the caller knows whether its key still fits)."""
    if stored is None:
        raise KeyStoreIntegrityError(
            f"{where} has no MAC: it was added or altered without the master key "
            "(every row is authenticated since keystore format 3)")
    if not hmac.compare_digest(expected, bytes(stored)):
        raise KeyStoreIntegrityError(f"{where} does not match its MAC: {kind}")
