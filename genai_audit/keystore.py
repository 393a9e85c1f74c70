"""Keys live here, never in ClickHouse.

``KeyStore`` is the seam: the pipeline asks it for per-tenant secrets (pseudonyms,
content commitments) and the store's Ed25519 signing key (ledger checkpoints, archive
manifests). ``LocalKeyStore`` keeps them in one JSON file beside the store,
created with mode 0600, written atomically under an exclusive lock so several processes
can share it. A KMS or Vault backend implements the same protocol.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEYSTORE_FILE = "keystore.json"
KEYSTORE_VERSION = 1


class KeyStoreError(Exception):
    """The keystore cannot be read or written."""


class KeyStore(Protocol):
    def tenant_secret(self, tenant_id: str, purpose: str) -> bytes:
        """A 32-byte secret for ``(tenant, purpose)``, created on first use."""
        ...

    def signing_key(self) -> Ed25519PrivateKey:
        """The store's Ed25519 signing key (ledger checkpoints, archive manifests)."""
        ...


class LocalKeyStore:
    """Per-tenant secrets in ``<directory>/keystore.json`` (0600)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()
        self.path = self.directory / KEYSTORE_FILE
        self._cache: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()
        self._signing: Ed25519PrivateKey | None = None

    def tenant_secret(self, tenant_id: str, purpose: str) -> bytes:
        key = (tenant_id, purpose)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            secret = self._load_or_create(f"{purpose}:{tenant_id}")
            self._cache[key] = secret
            return secret

    def signing_key(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._signing is None:
                seed = self._load_or_create("signing:ed25519")
                self._signing = Ed25519PrivateKey.from_private_bytes(seed)
            return self._signing

    def public_key_pem(self) -> bytes:
        return self.signing_key().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def _load_or_create(self, name: str) -> bytes:
        with self._locked() as data:
            secrets_ = data.setdefault("tenant_secrets", {})
            if name not in secrets_:
                secrets_[name] = secrets.token_hex(32)
                self._write(data)
            try:
                return bytes.fromhex(secrets_[name])
            except (TypeError, ValueError) as exc:
                raise KeyStoreError(f"keystore {self.path}: secret {name!r} is corrupt") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.directory / ".lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield self._read()
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except OSError as exc:
            raise KeyStoreError(f"keystore {self.path}: {exc.strerror or exc}") from exc

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": KEYSTORE_VERSION}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise KeyStoreError(f"keystore {self.path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != KEYSTORE_VERSION:
            raise KeyStoreError(f"keystore {self.path}: unknown format")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
