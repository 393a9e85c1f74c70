"""Who is sending: per-tenant bearer tokens, and what a span may claim about its tenant.

The tokens file (TOML) holds SHA-256 hashes of tokens, never the tokens::

    [[token]]
    tenant = "acme"
    sha256 = "9f86d081884c7d65..."   # genai-audit serve --hash-token < token.txt
    trust_processed = false          # may this sender skip stages it ran in-process?

The tenant comes from the token. A span that claims another tenant (its ``tenant.id``
attribute, usually stamped from baggage) is rejected, or with ``tenant_mismatch =
"reattribute"`` stored under the token's tenant and flagged ``tenant_reattributed``; it is
never silently accepted. Without a tokens file the gateway refuses to start unless
unauthenticated mode is explicitly enabled (local development): then the span's own tenant
is used, as in the in-process path. Both at once is refused: a request without a token
could then write into any tenant, including the ones the tokens protect.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HEX = frozenset("0123456789abcdef")


class AuthError(Exception):
    """Missing or unknown credentials (HTTP 401 / gRPC UNAUTHENTICATED)."""


class AuthConfigError(ValueError):
    """A tokens file that cannot be used."""


@dataclass(frozen=True)
class Principal:
    """An authenticated sender. ``tenant`` None: unauthenticated development mode."""

    tenant: str | None
    trust_processed: bool = False
    name: str = ""


ANONYMOUS = Principal(tenant=None, trust_processed=False, name="unauthenticated")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


class Authenticator:
    def __init__(self, tokens: dict[str, Principal], allow_unauthenticated: bool) -> None:
        self._tokens = tokens
        self.allow_unauthenticated = allow_unauthenticated

    @classmethod
    def from_settings(cls, tokens_file: str | None, allow_unauthenticated: bool
                      ) -> Authenticator:
        if tokens_file is None:
            if not allow_unauthenticated:
                raise AuthConfigError(
                    "no gateway_tokens_file: set one (see docs/deploy.md) or, for local "
                    "development only, --allow-unauthenticated")
            return cls({}, True)
        if allow_unauthenticated:
            raise AuthConfigError(
                "gateway_tokens_file and --allow-unauthenticated together would let a request "
                "without a token write into any tenant, including those the tokens protect: "
                "use one or the other")
        return cls(load_tokens(Path(tokens_file)), False)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization`` header value (or gRPC metadata)."""
        if not authorization:
            if self.allow_unauthenticated:
                return ANONYMOUS
            raise AuthError("missing bearer token")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("expected 'Authorization: Bearer <token>'")
        digest = hash_token(token)
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise AuthError("unknown bearer token")


def hashed_entries(path: Path, table: str, what: str
                   ) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The ``[[table]]`` entries of a token file (the gateway's senders, the read interface's
    readers): each as (where, sha256 digest, entry), the digest checked and never repeated.
    The one reader of both files; every error names the file and the entry."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AuthConfigError(f"{what} {path}: cannot read: {type(exc).__name__}: "
                              f"{exc}") from exc
    entries = data.get(table, [])
    if not isinstance(entries, list) or not entries:
        raise AuthConfigError(f"{what} {path}: no [[{table}]] entries")
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        where = f"{what} {path}, {table} #{number}"
        if not isinstance(entry, dict):
            raise AuthConfigError(f"{where}: must be a table")
        digest = str(entry.get("sha256", "")).strip().lower()
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise AuthConfigError(f"{where}: sha256 must be 64 hex characters (the hash, "
                                  "not the token)")
        if digest in seen:
            raise AuthConfigError(f"{where}: duplicate token hash")
        seen.add(digest)
        yield where, digest, entry


def load_tokens(path: Path) -> dict[str, Principal]:
    tokens: dict[str, Principal] = {}
    for where, digest, entry in hashed_entries(path, "token", "tokens file"):
        tenant = str(entry.get("tenant", "")).strip()
        if not tenant:
            raise AuthConfigError(f"{where}: tenant is required")
        trust = entry.get("trust_processed", False)
        if not isinstance(trust, bool):
            raise AuthConfigError(f"{where}: trust_processed must be true or false")
        tokens[digest] = Principal(tenant=tenant, trust_processed=trust,
                                   name=str(entry.get("name", tenant)))
    return tokens
