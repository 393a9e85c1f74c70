"""The master key (KEK): it wraps every key the keystore holds, and never leaves this module.

Where it comes from, first match wins:

1. ``GENAI_AUDIT_MASTER_KEY``: 32 bytes as 64 hex characters or base64 (a secret manager,
   a Kubernetes secret, a systemd credential...);
2. a key file (setting ``master_key_file``, default ``<keystore dir>/master.key``), mode
   0600, created by ``genai-audit init`` or on the first use of an empty keystore.

``KeyWrapper`` is the seam for a KMS or Vault: an object that wraps and unwraps small
secrets with associated data. ``MasterKey`` is the local implementation (AES-256-GCM); a
KMS backend implements ``wrap``/``unwrap`` with the KMS's Encrypt/Decrypt (or Vault's
transit engine) and the keystore stays unchanged (see docs/compliance.md). The setting
``key_wrapper`` names one (``load_key_wrapper``): an entry point of the group
``genai_audit.key_wrappers`` or a ``module:attribute`` import path, either giving a
callable that takes the ``Settings`` and returns the wrapper.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
import secrets
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENV_MASTER_KEY = "GENAI_AUDIT_MASTER_KEY"
WRAPPER_ENTRY_POINTS = "genai_audit.key_wrappers"
MASTER_KEY_FILE = "master.key"
KEY_BYTES = 32
NONCE_BYTES = 12
_WRAP_VERSION = b"\x01"


class MasterKeyError(Exception):
    """The master key is missing, malformed, or does not open what it should."""


class KeyWrapper(Protocol):
    """Wraps keys for storage. Implementations: ``MasterKey`` (local), a KMS, Vault transit."""

    @property
    def key_id(self) -> str:
        """A non-secret fingerprint of the wrapping key (stored beside wrapped keys)."""
        ...

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext, or ``MasterKeyError`` if ``blob`` was not wrapped by this key."""
        ...


class MasterKey:
    """A local AES-256-GCM key-encryption key."""

    def __init__(self, key: bytes, source: str) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"master key from {source}: expected {KEY_BYTES} bytes, "
                                 f"got {len(key)}")
        self._aead = AESGCM(key)
        self.source = source
        self._key_id = hashlib.sha256(b"genai-audit/kek-id\0" + key).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _WRAP_VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != _WRAP_VERSION:
            raise MasterKeyError("wrapped key is malformed")
        try:
            return self._aead.decrypt(blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:], aad)
        except InvalidTag:
            raise MasterKeyError(f"the master key from {self.source} does not open this "
                                 "wrapped key") from None

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self._key_id!r}, source={self.source!r})"


def parse_key_text(text: str, source: str) -> bytes:
    """32 bytes from 64 hex characters or base64 (standard or URL-safe)."""
    value = text.strip()
    if len(value) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        key = base64.b64decode(value + "=" * (-len(value) % 4),
                               altchars=b"-_" if ("-" in value or "_" in value) else None,
                               validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"master key from {source}: not hex or base64") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"master key from {source}: expected {KEY_BYTES} bytes, "
                             f"got {len(key)}")
    return key


def write_key_file(path: Path) -> None:
    """Create ``path`` with a fresh random key, mode 0600. Never overwrites an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path.parent)


def load_master_key(key_file: Path, *, create: bool,
                    env: Mapping[str, str] | None = None) -> MasterKey:
    """The environment's key if set, else ``key_file`` (created first when ``create``)."""
    env = os.environ if env is None else env
    if env.get(ENV_MASTER_KEY):
        return MasterKey(parse_key_text(env[ENV_MASTER_KEY], ENV_MASTER_KEY), ENV_MASTER_KEY)
    if create:
        write_key_file(key_file)
    try:
        text = key_file.read_text("ascii")
    except FileNotFoundError:
        raise MasterKeyError(f"no master key: set {ENV_MASTER_KEY} or provide the key file "
                             f"{key_file} (genai-audit init creates one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MasterKeyError(f"master key file {key_file}: cannot read: {exc}") from None
    mode = key_file.stat().st_mode & 0o077
    if mode:
        raise MasterKeyError(f"master key file {key_file} is readable by group or others "
                             f"(mode {oct(key_file.stat().st_mode & 0o777)}): chmod 600 it")
    return MasterKey(parse_key_text(text, str(key_file)), str(key_file))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key_wrapper(spec: str, settings: Any) -> KeyWrapper:
    """The wrapper ``spec`` names: ``module:attr`` (an import path) or the name of an entry
    point in ``genai_audit.key_wrappers``. What it names is called with ``settings`` (a
    class taking them will do) and must return a ``KeyWrapper``. ``MasterKeyError`` names
    what went wrong: never a key, never the plug-in's own message (it may hold one)."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise MasterKeyError(f"cannot import module {module_name!r} "
                                 f"({type(exc).__name__})") from None
        for part in attr.split("."):
            if not hasattr(target, part):
                raise MasterKeyError(f"module {module_name!r} has no attribute {attr!r}")
            target = getattr(target, part)
    else:
        found = metadata.entry_points(group=WRAPPER_ENTRY_POINTS, name=spec)
        if not found:
            raise MasterKeyError(f"no entry point {spec!r} in group {WRAPPER_ENTRY_POINTS} "
                                 "(is its package installed?), and not a module:attr path")
        try:
            target = next(iter(found)).load()
        except Exception as exc:
            raise MasterKeyError(f"entry point {spec!r} does not load "
                                 f"({type(exc).__name__})") from None
    if not callable(target):
        raise MasterKeyError(f"{spec!r} is not callable (a class or factory taking the "
                             "settings)")
    try:
        wrapper = target(settings)
    except Exception as exc:
        raise MasterKeyError(f"{spec!r} failed to start ({type(exc).__name__})") from None
    missing = [name for name in ("key_id", "wrap", "unwrap") if not hasattr(wrapper, name)]
    if missing:
        raise MasterKeyError(f"{spec!r} returned {type(wrapper).__name__}, not a key wrapper "
                             f"(missing {', '.join(missing)})")
    return cast(KeyWrapper, wrapper)
