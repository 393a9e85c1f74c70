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

This module is also the keystore's format: the check value that binds a keystore to its
master key names the format, and a format-2 keystore is upgraded in place
(``upgrade_from_v2``).
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from genai_audit.masterkey import KeyWrapper, MasterKeyError

FORMAT = "3"
MAC_SECRET = "integrity:rows"  # noqa: S105 - the name of a secrets row, not a secret
_SUBJECT = b"subject-row/" + FORMAT.encode()
_ERASURE = b"erasure-row/" + FORMAT.encode()
_KEK_CHECK = b"genai-audit keystore kek check"
# The check value's associated data names the format, so a format-3 keystore cannot be made
# to look like a format-2 one (whose rows have no MACs yet) without the master key.
_CHECK_AAD = b"kek-check\0format " + FORMAT.encode()
_V2_CHECK_AAD = b"kek-check"


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


def new_mac_key(conn: sqlite3.Connection, wrapper: KeyWrapper) -> bytes:
    """A fresh row-MAC key, stored wrapped in ``secrets``."""
    key = secrets.token_bytes(32)
    conn.execute("INSERT INTO secrets (name, wrapped) VALUES (?, ?)",
                 (MAC_SECRET, wrapper.wrap(key, secret_aad(MAC_SECRET))))
    return key



def upgrade_from_v2(conn: sqlite3.Connection, wrapper: KeyWrapper) -> tuple[bytes, bytes]:
    """Format 2 -> 3, in the caller's transaction (so once, even with several processes
    opening the file): authenticate every row; replace the erasure markers, which held
    ``HMAC(index secret, user id)`` (a testable link to the erased subject), by bare
    erasure times; ``erased_before`` becomes the tenant's latest erasure before the row
    was created. Rows already changed by someone before the upgrade cannot be told
    apart, so the MACs vouch for the keystore as it is at the upgrade."""
    conn.execute("ALTER TABLE subjects ADD COLUMN mac BLOB")
    mac_key = new_mac_key(conn, wrapper)
    times: dict[str, list[datetime]] = {}
    for tenant, erasure_id, erased_at in conn.execute(
            "SELECT tenant, erasure_id, erased_at FROM erasures").fetchall():
        moment = utc(erased_at)
        times.setdefault(tenant, []).append(moment)
        conn.execute("INSERT OR REPLACE INTO erasure_times (tenant, erasure_id, erased_at,"
                     " mac) VALUES (?, ?, ?, ?)",
                     (tenant, erasure_id, moment.isoformat(),
                      erasure_mac(mac_key, tenant, erasure_id, moment.isoformat())))
    conn.execute("DROP TABLE erasures")
    for rowid, tenant, lookup, pseudonym, key_id, wrapped, created_at in conn.execute(
            "SELECT rowid, tenant, lookup, pseudonym, key_id, wrapped, created_at"
            " FROM subjects").fetchall():
        earlier = [t for t in times.get(tenant, ()) if t < utc(created_at)]
        erased_before = max(earlier).isoformat() if earlier else None
        conn.execute("UPDATE subjects SET erased_before = ?, mac = ? WHERE rowid = ?",
                     (erased_before, subject_mac(mac_key, tenant, lookup, pseudonym,
                                                 key_id, bytes(wrapped), created_at,
                                                 erased_before), rowid))
    check = new_check(wrapper)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'kek_check'", (check,))
    conn.execute("UPDATE meta SET value = ? WHERE name = 'version'", (FORMAT,))
    return check, mac_key


def check_format(wrapper: KeyWrapper, check: bytes) -> str:
    """The keystore format the check value was written for; ``MasterKeyError`` if this
    wrapper does not open it."""
    try:
        wrapper.unwrap(check, _CHECK_AAD)
        return FORMAT
    except MasterKeyError:
        wrapper.unwrap(check, _V2_CHECK_AAD)
        return "2"


def new_check(wrapper: KeyWrapper) -> bytes:
    """The check value that binds a keystore to its wrapper and to this format."""
    return wrapper.wrap(_KEK_CHECK, _CHECK_AAD)


def secret_aad(name: str) -> bytes:
    return b"secret\0" + name.encode()


def utc(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise KeyStoreError(f"not an ISO 8601 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


