"""Who may read through the owner's read interface, and what each reader sees.

The readers file (TOML) holds SHA-256 hashes of reader tokens, never the tokens::

    [[reader]]
    name = "audit-team"
    sha256 = "9f86d081884c7d65..."   # genai-audit serve --hash-token < token.txt
    role = "auditor"                 # auditor | admin
    tenant = "acme"                  # optional (auditor only): this tenant's rows only

A client sends the token as the password of HTTP basic auth (``--dsn
http://auditor:TOKEN@host:port``; the user name is not checked: the token decides), as
``X-ClickHouse-Key`` (ClickHouse's header pair) or as ``Authorization: Bearer``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from genai_audit.clickhouse.errors import ConfigError
from genai_audit.clickhouse.rbac import validate_tenant
from genai_audit.exporter.gateway.auth import AuthConfigError, AuthError, hash_token, hashed_entries

ROLES = ("auditor", "admin")
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Reader:
    """An authenticated reader. ``tenant`` None: every tenant's rows."""

    name: str
    role: str
    tenant: str | None = None


class ReaderAuth:
    def __init__(self, readers: Mapping[str, Reader]) -> None:
        self._readers = dict(readers)

    @classmethod
    def from_file(cls, path: str | None) -> ReaderAuth:
        if not path:
            raise AuthConfigError("the read endpoint needs a readers file (gateway_readers_file"
                                  ", see docs/deploy.md): it never serves anonymous reads")
        return cls(load_readers(Path(path)))

    def authenticate(self, key: str | None, authorization: str | None) -> Reader:
        """The reader for a request's ``X-ClickHouse-Key`` and ``Authorization`` headers;
        ``AuthError`` when none matches."""
        token = _token(key, authorization)
        if not token:
            raise AuthError("credentials required: basic auth with the reader token as the "
                            "password, or X-ClickHouse-Key")
        digest = hash_token(token)
        for known, reader in self._readers.items():
            if hmac.compare_digest(known, digest):
                return reader
        raise AuthError("unknown reader token")


def _token(key: str | None, authorization: str | None) -> str:
    if key:
        return key.strip()
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2].strip()
    return ""


def load_readers(path: Path) -> dict[str, Reader]:
    readers: dict[str, Reader] = {}
    for where, digest, entry in hashed_entries(path, "reader", "readers file"):
        role = str(entry.get("role", "")).strip()
        if role not in ROLES:
            raise AuthConfigError(f"{where}: role must be one of {', '.join(ROLES)}")
        tenant = entry.get("tenant")
        if tenant is not None:
            if role != "auditor":
                raise AuthConfigError(f"{where}: only an auditor can be limited to a tenant")
            try:
                tenant = validate_tenant(str(tenant))
            except ConfigError as exc:
                raise AuthConfigError(f"{where}: {exc}") from None
        readers[digest] = Reader(name=str(entry.get("name", role)), role=role, tenant=tenant)
    return readers
