"""Keys live here, never in ClickHouse.

``KeyStore`` is the seam the pipeline and the CLI use:

* per-tenant secrets (``tenant_secret``) and the store's Ed25519 signing key;
* per-data-subject keys (``SubjectKey``): a random pseudonym (what ClickHouse stores as
  ``gdpr_pseudonymized_user_key``) and a random AES-256 data key (DEK) that encrypts the
  subject's content. Records without a user use the tenant's no-subject key (pseudonym "").
  The only link from a user id to its pseudonym and DEK is a keystore row, found by
  ``HMAC(tenant index secret, user id)``; deleting that row (``destroy_subject``) is the
  GDPR Art. 17 crypto-shredding: content becomes unreadable and the pseudonym unlinkable.
  What the keystore keeps of an erasure is its id and time, never anything derived from the
  user id: nobody, holding every surviving key, can test a guessed user id against an
  erased subject (so an erased user and one never seen look the same).

Every subject row and erasure time is authenticated by a MAC under the master key
(``genai_audit.keyrows``), checked whenever a row is read: a row moved, edited or forged by
someone without the master key raises ``KeyStoreIntegrityError``, never yields a wrong key.

``LocalKeyStore`` keeps everything in one SQLite file (``keystore.db``, mode 0600) beside
the store, every key wrapped by the master key (``genai_audit.masterkey``). SQLite gives
multi-process safety (file locks), durability (``synchronous=FULL``, rollback journal
deleted on commit) and real deletion (``secure_delete``: freed bytes are zeroed, so a
destroyed key leaves no copy in the file). Processes sharing the file notice another
process's erasures before their next key lookup (``PRAGMA data_version`` + an erasure
epoch), so no stale cached key outlives its erasure.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from genai_audit.clock import SYSTEM_CLOCK, Clock
from genai_audit.keyrows import (
    FORMAT,
    MAC_SECRET,
    KeyStoreError,
    KeyStoreIntegrityError,
    check_format,
    check_mac,
    erasure_mac,
    new_check,
    new_mac_key,
    secret_aad,
    subject_mac,
    upgrade_from_v2,
    utc,
)
from genai_audit.masterkey import (
    ENV_MASTER_KEY,
    MASTER_KEY_FILE,
    KeyWrapper,
    MasterKey,
    MasterKeyError,
    fsync_dir,
    load_key_wrapper,
    load_master_key,
    write_key_file,
)

if TYPE_CHECKING:
    from genai_audit.config import Settings

__all__ = ["NO_SUBJECT", "ErasureMarker", "KeyStore", "KeyStoreError",
           "KeyStoreIntegrityError", "LocalKeyStore", "SubjectKey", "open_keystore"]

KEYSTORE_FILE = "keystore.db"
KEYSTORE_VERSION = FORMAT
_OLD_VERSIONS = ("2",)  # upgraded on first open with the master key (keyrows)
NO_SUBJECT = ""  # pseudonym of the tenant's no-subject key (records without a user)
_NO_SUBJECT_LOOKUP = "*"
_INDEX_PURPOSE = "subject-index"
_SUBJECT_COLUMNS = "lookup, pseudonym, key_id, wrapped, created_at, erased_before, mac"
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, wrapped BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS subjects (tenant TEXT NOT NULL, lookup TEXT NOT NULL,"
    " pseudonym TEXT NOT NULL, key_id TEXT NOT NULL, wrapped BLOB NOT NULL,"
    " created_at TEXT NOT NULL, erased_before TEXT, mac BLOB, PRIMARY KEY (tenant, lookup))",
    "CREATE UNIQUE INDEX IF NOT EXISTS subjects_by_pseudonym ON subjects (tenant, pseudonym)",
    # When each erasure happened, per tenant; nothing that names or tests the subject.
    "CREATE TABLE IF NOT EXISTS erasure_times (tenant TEXT NOT NULL, erasure_id TEXT NOT NULL,"
    " erased_at TEXT NOT NULL, mac BLOB, PRIMARY KEY (tenant, erasure_id))",
)


@dataclass(frozen=True)
class SubjectKey:
    """One data subject's pseudonym and data key (DEK)."""

    tenant_id: str
    pseudonym: str  # NO_SUBJECT for the tenant's no-subject key
    key_id: str  # non-secret id of the DEK, stored with each record it encrypts
    dek: bytes = field(repr=False)
    # The tenant's latest erasure before this key was created (None: there was none). A
    # record of this subject that started before then may belong to an erased subject (the
    # keystore cannot tell, by design): it must not be stored under this key.
    erased_before: datetime | None = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (e.g. content commitments), dead with the DEK."""
        key = self._memo.get(purpose)
        if key is None:
            key = self._memo[purpose] = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"genai-audit/" + purpose.encode()).derive(self.dek)
        return bytes(key)

    def aead(self) -> AESGCM:
        """The AES-256-GCM cipher of the DEK (built once per key)."""
        cipher = self._memo.get("\0aead")
        if cipher is None:
            cipher = self._memo["\0aead"] = AESGCM(self.dek)
        return cast(AESGCM, cipher)


@dataclass(frozen=True)
class ErasureMarker:
    """An erasure as the keystore remembers it: its id and time; no user, pseudonym or key."""

    erasure_id: str
    request_id: str
    erased_at: str


class KeyStore(Protocol):
    def tenant_secret(self, tenant_id: str, purpose: str) -> bytes:
        """A 32-byte secret for ``(tenant, purpose)``, created on first use."""
        ...

    def signing_key(self) -> Ed25519PrivateKey:
        """The store's Ed25519 signing key (ledger checkpoints, archive manifests)."""
        ...

    def subject_keys(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, SubjectKey]:
        """The key of each user (created on first sight), by user id."""
        ...

    def key_for_pseudonym(self, tenant_id: str, pseudonym: str) -> SubjectKey | None:
        """The key behind a stored pseudonym; None once erased. NO_SUBJECT is created."""
        ...

    def keys_for_pseudonyms(self, tenant_id: str,
                            pseudonyms: Iterable[str]) -> dict[str, SubjectKey | None]:
        """``key_for_pseudonym`` for many at once (one freshness check for the batch)."""
        ...

    def find_subject(self, tenant_id: str, user_id: str) -> SubjectKey | None:
        """The user's live key, never creating one. None for a user never seen and for an
        erased one alike: nothing tells them apart."""
        ...

    def destroy_subject(self, tenant_id: str, user_id: str, marker: ErasureMarker) -> bool:
        """Delete the user's pseudonym mapping and DEK for good; False if there was none."""
        ...


class LocalKeyStore:
    """The keystore in ``<directory>/keystore.db``, keys wrapped by the master key."""

    def __init__(self, directory: str | os.PathLike[str], *, wrapper: KeyWrapper | None = None,
                 master_key_file: str | os.PathLike[str] | None = None,
                 create: bool = True, clock: Clock = SYSTEM_CLOCK) -> None:
        """``create=False``: an existing keystore only (readers: a wrong path is an error,
        not a new empty keystore that finds no keys)."""
        self.create = create
        self.directory = Path(directory).expanduser().resolve()
        self.path = self.directory / KEYSTORE_FILE
        self.master_key_file = (Path(master_key_file).expanduser().resolve() if master_key_file
                                else self.directory / MASTER_KEY_FILE)
        self.clock = clock
        self._wrapper = wrapper
        self._injected = wrapper is not None  # a KMS's wrapper: rotation is the KMS's business
        self._checked = False  # the wrapper opens this keystore's check value
        self._kek_check: bytes | None = None  # the check value the loaded master key opens
        self._mac_key = b""
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._data_version = -1
        self._epoch = b""
        self._secrets: dict[str, bytes] = {}
        self._by_lookup: dict[tuple[str, str], SubjectKey] = {}
        self._by_pseudonym: dict[tuple[str, str], SubjectKey] = {}
        self._signing: Ed25519PrivateKey | None = None

    # -- secrets ---------------------------------------------------------------------
    def tenant_secret(self, tenant_id: str, purpose: str) -> bytes:
        return self._secret(f"{purpose}:{tenant_id}")

    def signing_key(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._signing is None:
                self._signing = Ed25519PrivateKey.from_private_bytes(
                    self._secret("signing:ed25519"))
            return self._signing

    def public_key_pem(self) -> bytes:
        return self.signing_key().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def _secret(self, name: str, *, index_of: str | None = None) -> bytes:
        """The secret ``name``, created on first use; ``index_of``: it is that tenant's
        subject index, which must not be recreated while the tenant has subjects (a new
        index would silently make every user new, and erasures find no one)."""
        with self._lock:
            cached = self._secrets.get(name)
            if cached is not None:
                return cached
            aad = secret_aad(name)
            with self._transaction(write=False) as conn:
                row = conn.execute("SELECT wrapped FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is None:
                with self._transaction(write=True) as conn:
                    row = conn.execute("SELECT wrapped FROM secrets WHERE name = ?",
                                       (name,)).fetchone()
                    if row is None and index_of is not None and conn.execute(
                            "SELECT 1 FROM subjects WHERE tenant = ? AND lookup != ? LIMIT 1",
                            (index_of, _NO_SUBJECT_LOOKUP)).fetchone():
                        raise KeyStoreIntegrityError(
                            f"keystore {self.path}: tenant {index_of!r} has data subjects but "
                            "its subject index secret is missing (deleted from the file)")
                    if row is None:
                        row = (self._wrap(secrets.token_bytes(32), aad),)
                        conn.execute("INSERT INTO secrets (name, wrapped) VALUES (?, ?)",
                                     (name, row[0]))
            secret = self._unwrap(row[0], aad, f"secret {name!r}")
            self._secrets[name] = secret
            return secret

    # -- data subjects ---------------------------------------------------------------
    def subject_keys(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, SubjectKey]:
        with self._lock:
            self._refresh()
            wanted = {user: self._lookup(tenant_id, user) for user in set(user_ids)}
            found = {u: k for u, lk in wanted.items()
                     if (k := self._by_lookup.get((tenant_id, lk))) is not None}
            missing = {u: lk for u, lk in wanted.items() if u not in found}
            if missing:
                found.update(self._ensure(tenant_id, missing))
            return found

    def key_for_pseudonym(self, tenant_id: str, pseudonym: str) -> SubjectKey | None:
        return self.keys_for_pseudonyms(tenant_id, (pseudonym,))[pseudonym]

    def keys_for_pseudonyms(self, tenant_id: str,
                            pseudonyms: Iterable[str]) -> dict[str, SubjectKey | None]:
        with self._lock:
            self._refresh()
            return {p: self._cached_or_loaded(tenant_id, p) for p in set(pseudonyms)}

    def _cached_or_loaded(self, tenant_id: str, pseudonym: str) -> SubjectKey | None:
        cached = self._by_pseudonym.get((tenant_id, pseudonym))
        if cached is not None:
            return cached
        if pseudonym == NO_SUBJECT:
            return self._ensure(tenant_id, {"": _NO_SUBJECT_LOOKUP})[""]
        with self._transaction(write=False) as conn:
            row = conn.execute(f"SELECT {_SUBJECT_COLUMNS} FROM subjects"  # noqa: S608
                               " WHERE tenant = ? AND pseudonym = ?",
                               (tenant_id, pseudonym)).fetchone()
        return None if row is None else self._remember(tenant_id, row)

    def find_subject(self, tenant_id: str, user_id: str) -> SubjectKey | None:
        with self._lock:
            self._refresh()
            lookup = self._lookup(tenant_id, user_id)
            with self._transaction(write=False) as conn:
                row = conn.execute(f"SELECT {_SUBJECT_COLUMNS} FROM subjects"  # noqa: S608
                                   " WHERE tenant = ? AND lookup = ?",
                                   (tenant_id, lookup)).fetchone()
            return None if row is None else self._remember(tenant_id, row)

    def destroy_subject(self, tenant_id: str, user_id: str, marker: ErasureMarker) -> bool:
        """Delete the user's row (checked first: a row moved here from another subject is
        an error, not that subject's erasure) and remember only when it happened."""
        erased_at = utc(marker.erased_at).isoformat()
        lookup = self._lookup(tenant_id, user_id)
        with self._lock:
            with self._transaction(write=True) as conn:
                row = conn.execute(f"SELECT {_SUBJECT_COLUMNS} FROM subjects"  # noqa: S608
                                   " WHERE tenant = ? AND lookup = ?",
                                   (tenant_id, lookup)).fetchone()
                if row is not None:
                    self._check_subject(tenant_id, row)
                    conn.execute("DELETE FROM subjects WHERE tenant = ? AND lookup = ?",
                                 (tenant_id, lookup))
                    conn.execute(
                        "INSERT OR REPLACE INTO erasure_times (tenant, erasure_id, erased_at,"
                        " mac) VALUES (?, ?, ?, ?)",
                        (tenant_id, marker.erasure_id, erased_at,
                         erasure_mac(self._mac_key, tenant_id, marker.erasure_id, erased_at)))
                    conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES"
                                 " ('erasure_epoch', ?)", (secrets.token_bytes(16),))
            self._forget_subjects()
            return row is not None

    def status(self) -> dict[str, Any]:
        """What the keystore holds, without any key material."""
        with self._lock:
            kek = self._kek()
            with self._transaction(write=False) as conn:
                counts = conn.execute(
                    "SELECT (SELECT count(DISTINCT tenant) FROM subjects),"
                    " (SELECT count(*) FROM subjects WHERE lookup != ?),"
                    " (SELECT count(*) FROM erasure_times), (SELECT count(*) FROM secrets)",
                    (_NO_SUBJECT_LOOKUP,)).fetchone()
        source = getattr(kek, "source", type(kek).__name__)
        return {"keystore": str(self.path), "master_key_id": kek.key_id,
                "master_key_source": source, "tenants": counts[0], "subjects": counts[1],
                "erased_subjects": counts[2], "secrets": counts[3]}

    def _lookup(self, tenant_id: str, user_id: str) -> str:
        secret = self._secret(f"{_INDEX_PURPOSE}:{tenant_id}", index_of=tenant_id)
        return hmac.new(secret, user_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def _ensure(self, tenant_id: str, lookups: dict[str, str]) -> dict[str, SubjectKey]:
        """Fetch or create (in one transaction) the subjects behind ``{user: lookup}``."""
        result: dict[str, SubjectKey] = {}
        with self._transaction(write=True) as conn:
            latest_erasure: str | None = None
            for user, lookup in lookups.items():
                row = conn.execute(f"SELECT {_SUBJECT_COLUMNS} FROM subjects"  # noqa: S608
                                   " WHERE tenant = ? AND lookup = ?",
                                   (tenant_id, lookup)).fetchone()
                if row is None:
                    if latest_erasure is None:
                        latest_erasure = self._latest_erasure(conn, tenant_id) or ""
                    row = self._new_subject(conn, tenant_id, lookup, latest_erasure or None)
                result[user] = self._remember(tenant_id, row)
        return result

    def _new_subject(self, conn: sqlite3.Connection, tenant_id: str, lookup: str,
                     erased_before: str | None) -> _SubjectRow:
        pseudonym = NO_SUBJECT if lookup == _NO_SUBJECT_LOOKUP else secrets.token_hex(16)
        key_id = secrets.token_hex(8)
        wrapped = self._wrap(secrets.token_bytes(32), _dek_aad(tenant_id, pseudonym, key_id))
        created_at = self.clock.now().astimezone(UTC).isoformat()
        mac = subject_mac(self._mac_key, tenant_id, lookup, pseudonym, key_id, wrapped,
                          created_at, erased_before)
        conn.execute("INSERT INTO subjects (tenant, lookup, pseudonym, key_id, wrapped,"
                     " created_at, erased_before, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (tenant_id, lookup, pseudonym, key_id, wrapped, created_at,
                      erased_before, mac))
        return (lookup, pseudonym, key_id, wrapped, created_at, erased_before, mac)

    def _latest_erasure(self, conn: sqlite3.Connection, tenant_id: str) -> str | None:
        """The tenant's latest erasure time (each checked against its MAC), or None."""
        latest: datetime | None = None
        for erasure_id, erased_at, mac in conn.execute(
                "SELECT erasure_id, erased_at, mac FROM erasure_times WHERE tenant = ?",
                (tenant_id,)):
            check_mac(erasure_mac(self._mac_key, tenant_id, erasure_id, erased_at), mac,
                      f"keystore {self.path}: an erasure time of tenant {tenant_id!r}",
                      "it was edited or forged")
            moment = utc(erased_at)
            latest = moment if latest is None or moment > latest else latest
        return None if latest is None else latest.isoformat()

    def _check_subject(self, tenant_id: str, row: _SubjectRow) -> bytes:
        """The row's DEK, once its MAC proves the row is the one the keystore wrote."""
        lookup, pseudonym, key_id, wrapped, created_at, erased_before, mac = row
        expected = subject_mac(self._mac_key, tenant_id, lookup, pseudonym, key_id,
                               bytes(wrapped), created_at, erased_before)
        try:
            dek: bytes | None = self._kek().unwrap(bytes(wrapped),
                                                   _dek_aad(tenant_id, pseudonym, key_id))
        except MasterKeyError:
            dek = None
        kind = ("its user mapping (lookup), creation or erasure time was changed, or it was "
                "swapped with another subject's" if dek is not None else
                "its wrapped data key does not belong to its pseudonym and key id")
        where = "the no-subject key" if lookup == _NO_SUBJECT_LOOKUP else "a data subject"
        check_mac(expected, mac, f"keystore {self.path}: tenant {tenant_id!r}, {where}", kind)
        if dek is None:  # MAC fine but the master key does not open it: not tampering
            self._unwrap(bytes(wrapped), _dek_aad(tenant_id, pseudonym, key_id),
                         "a subject key")
        return cast(bytes, dek)

    def _remember(self, tenant_id: str, row: _SubjectRow) -> SubjectKey:
        dek = self._check_subject(tenant_id, row)
        lookup, pseudonym, key_id, _, _, erased_before, _ = row
        key = SubjectKey(tenant_id, pseudonym, key_id, dek,
                         utc(erased_before) if erased_before else None)
        self._by_lookup[(tenant_id, lookup)] = key
        self._by_pseudonym[(tenant_id, pseudonym)] = key
        return key

    def _forget_subjects(self) -> None:
        self._by_lookup.clear()
        self._by_pseudonym.clear()

    def _refresh(self) -> None:
        """Drop cached subject keys if any process erased a subject since we last looked."""
        conn = self._connection()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        row = conn.execute("SELECT value FROM meta WHERE name = 'erasure_epoch'").fetchone()
        epoch = bytes(row[0]) if row else b""
        if epoch != self._epoch:
            self._epoch = epoch
            self._forget_subjects()

    # -- master key and file ------------------------------------------------------------
    def ensure_master_key(self) -> KeyWrapper:
        """Load (creating it for a new keystore) the master key and check it fits."""
        with self._lock:
            return self._kek()

    def _kek(self) -> KeyWrapper:
        if self._checked and self._wrapper is not None:
            return self._wrapper
        injected = self._wrapper if self._injected else None
        with self._atomic(write=True) as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = 'kek_check'").fetchone()
            if row is None:  # a new keystore: bind it to this master key
                if conn.execute("SELECT 1 FROM secrets UNION ALL SELECT 1 FROM subjects"
                                " LIMIT 1").fetchone():
                    raise KeyStoreIntegrityError(
                        f"keystore {self.path} holds keys but no master key check value "
                        "(deleted from the file): refusing to bind it to a master key")
                wrapper = injected or load_master_key(self.master_key_file, create=True)
                check = new_check(wrapper)
                conn.execute("INSERT INTO meta (name, value) VALUES ('kek_check', ?)", (check,))
                self._mac_key = new_mac_key(conn, wrapper)
            else:
                check = bytes(row[0])
                wrapper = injected or self._load_fitting(check)
                if check_format(wrapper, check) != FORMAT:
                    check = upgrade_from_v2(conn, wrapper)[0]
                self._mac_key = self._load_mac_key(conn, wrapper)
        self._wrapper, self._checked = wrapper, True
        self._kek_check = None if self._injected else check
        return wrapper

    def _load_fitting(self, check: bytes) -> KeyWrapper:
        """The configured master key, which must open ``check``. A rotation that stopped
        after its commit left the new key in ``<key file>.new``: promote it."""
        wrapper = load_master_key(self.master_key_file, create=False)
        try:
            check_format(wrapper, check)
            return wrapper
        except MasterKeyError:
            pending = _pending_key_file(self.master_key_file)
            if os.environ.get(ENV_MASTER_KEY) or not pending.exists():
                raise
        fresh = load_master_key(pending, create=False, env={})
        check_format(fresh, check)  # raises if it does not fit either
        os.replace(pending, self.master_key_file)
        fsync_dir(self.master_key_file.parent)
        return load_master_key(self.master_key_file, create=False)

    def _load_mac_key(self, conn: sqlite3.Connection, wrapper: KeyWrapper) -> bytes:
        row = conn.execute("SELECT wrapped FROM secrets WHERE name = ?",
                           (MAC_SECRET,)).fetchone()
        if row is None:  # never recreated: that would bless whatever rows are there now
            raise KeyStoreIntegrityError(f"keystore {self.path}: the row MAC key is missing "
                                         "(deleted from the file)")
        try:
            return wrapper.unwrap(bytes(row[0]), secret_aad(MAC_SECRET))
        except MasterKeyError:  # the wrapper just opened the check value: the row was changed
            raise KeyStoreIntegrityError(f"keystore {self.path}: the row MAC key does not open "
                                         "under this keystore's master key: it was moved from "
                                         "another row or edited") from None

    def _follow_rotation(self, conn: sqlite3.Connection) -> None:
        """Inside a transaction: if another process rotated the master key, load the new one."""
        if self._kek_check is None:
            return  # an injected wrapper (KMS): rotation is the KMS's business
        row = conn.execute("SELECT value FROM meta WHERE name = 'kek_check'").fetchone()
        if row is not None and bytes(row[0]) != self._kek_check:
            try:
                wrapper = self._wrapper = self._load_fitting(bytes(row[0]))
                if check_format(wrapper, bytes(row[0])) != FORMAT:
                    raise KeyStoreIntegrityError(
                        f"keystore {self.path}: its check value was replaced by one of an "
                        "older format (a downgrade by someone without the master key)")
            except MasterKeyError as exc:
                raise KeyStoreError(f"keystore {self.path}: the master key was rotated and "
                                    f"this process cannot load the new one: {exc}") from None
            self._kek_check = bytes(row[0])

    def rotate_master_key(self, new_key: bytes | None = None) -> str:
        """Re-wrap every key under a new master key; return its id.

        The DEKs, secrets and pseudonyms stay the same (stored content stays readable).
        With a key file, the new key is generated into ``<file>.new`` and moved over the old
        file after the commit. With ``GENAI_AUDIT_MASTER_KEY``, pass ``new_key`` and then
        set the variable to it wherever the keystore is used. Other processes sharing the
        file pick up a rotated key file by themselves.
        """
        with self._lock:
            if self._injected:
                raise KeyStoreError("this keystore's keys are wrapped by an external service: "
                                    "rotate the key there")
            old = self._kek()
            from_env = bool(os.environ.get(ENV_MASTER_KEY))
            if from_env and new_key is None:
                raise KeyStoreError(f"{ENV_MASTER_KEY} holds the master key: give the new key")
            pending = _pending_key_file(self.master_key_file)
            if new_key is not None:
                new: KeyWrapper = MasterKey(new_key, "new master key")
            else:
                write_key_file(pending)
                new = load_master_key(pending, create=False, env={})
            with self._transaction(write=True) as conn:
                old = self._wrapper or old
                for name, wrapped in conn.execute(
                        "SELECT name, wrapped FROM secrets").fetchall():
                    aad = secret_aad(name)
                    conn.execute("UPDATE secrets SET wrapped = ? WHERE name = ?",
                                 (new.wrap(old.unwrap(bytes(wrapped), aad), aad), name))
                for rowid, tenant, *row in conn.execute(
                        f"SELECT rowid, tenant, {_SUBJECT_COLUMNS} FROM subjects"  # noqa: S608
                        ).fetchall():
                    lookup, pseudonym, key_id, wrapped, created_at, erased_before, _ = row
                    dek = self._check_subject(tenant, cast(_SubjectRow, tuple(row)))
                    wrapped = new.wrap(dek, _dek_aad(tenant, pseudonym, key_id))
                    conn.execute("UPDATE subjects SET wrapped = ?, mac = ? WHERE rowid = ?",
                                 (wrapped, subject_mac(self._mac_key, tenant, lookup, pseudonym,
                                                       key_id, wrapped, created_at,
                                                       erased_before), rowid))
                check = new_check(new)
                conn.execute("UPDATE meta SET value = ? WHERE name = 'kek_check'", (check,))
            if new_key is None:
                os.replace(pending, self.master_key_file)
                fsync_dir(self.master_key_file.parent)
                new = load_master_key(self.master_key_file, create=False, env={})
            self._wrapper, self._kek_check = new, check
            return new.key_id

    def _wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        return self._kek().wrap(plaintext, aad)

    def _unwrap(self, blob: bytes, aad: bytes, what: str) -> bytes:
        """``blob`` unwrapped. If it does not open although the master key opens this
        keystore's check value, the row was moved or edited: an integrity error."""
        wrapper = self._kek()
        try:
            return wrapper.unwrap(bytes(blob), aad)
        except MasterKeyError as exc:
            row = self._connection().execute(
                "SELECT value FROM meta WHERE name = 'kek_check'").fetchone()
            try:
                fits = row is not None and check_format(wrapper, bytes(row[0])) == FORMAT
            except MasterKeyError:
                fits = False
            if fits:
                raise KeyStoreIntegrityError(
                    f"keystore {self.path}: {what} does not open under the master key that "
                    "opens this keystore: it was moved from another row or edited") from None
            raise KeyStoreError(f"keystore {self.path}: {what} does not unwrap: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if not self.create and not self.path.exists():
            raise KeyStoreError(f"no keystore at {self.path}: set GENAI_AUDIT_KEYSTORE_DIR "
                                "(keystore_dir) to the store's keystore")
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                version = conn.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
                if version is None:
                    conn.execute("INSERT INTO meta (name, value) VALUES ('version', ?)",
                                 (KEYSTORE_VERSION,))
                elif str(version[0]) not in (KEYSTORE_VERSION, *_OLD_VERSIONS):
                    raise KeyStoreError(f"keystore {self.path}: unknown format {version[0]!r}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except (OSError, sqlite3.Error) as exc:
            raise KeyStoreError(f"keystore {self.path}: cannot open: {exc}") from None
        self._conn, self._pid = conn, os.getpid()
        self._checked = False  # a new process checks the master key (and format) again
        self._secrets.clear()
        self._forget_subjects()
        self._data_version = -1
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """A transaction under the current master key (following another process's
        rotation first)."""
        self._kek()
        with self._atomic(write=write) as conn:
            self._follow_rotation(conn)
            yield conn

    @contextmanager
    def _atomic(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: committed on success, rolled back on any error; SQLite
        and master-key errors become ``KeyStoreError``."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except MasterKeyError as exc:
            raise KeyStoreError(f"keystore {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise KeyStoreError(f"keystore {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._secrets.clear()
            self._forget_subjects()


_SubjectRow = tuple[str, str, str, bytes, str, str | None, bytes | None]


def _pending_key_file(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".new")


def _dek_aad(tenant_id: str, pseudonym: str, key_id: str) -> bytes:
    return "\0".join(("dek", tenant_id, pseudonym, key_id)).encode()


def default_keystore_dir(settings: Settings) -> Path:
    """``<store dir>-keys`` beside an embedded store; ``./genai-audit-keys`` for a server."""
    from genai_audit.clickhouse.dsn import embedded_path, resolve_dsn

    if settings.keystore_dir:
        return Path(settings.keystore_dir).expanduser().resolve()
    path = embedded_path(resolve_dsn(settings.dsn))
    return Path(str(path) + "-keys") if path else Path("genai-audit-keys").resolve()


def open_keystore(settings: Settings, *, create: bool = True) -> LocalKeyStore:
    """The keystore the settings name: its directory, and its master key (``key_wrapper``,
    a KMS or Vault plug-in, else ``GENAI_AUDIT_MASTER_KEY`` or the key file)."""
    wrapper = None
    if settings.key_wrapper:
        source = settings.sources.get("key_wrapper", "default")
        try:
            wrapper = load_key_wrapper(settings.key_wrapper, settings)
        except MasterKeyError as exc:
            raise KeyStoreError(f"key_wrapper (from {source}): {exc}") from None
    return LocalKeyStore(default_keystore_dir(settings), master_key_file=settings.master_key_file,
                         create=create, wrapper=wrapper)
