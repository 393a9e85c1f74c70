"""DSNs: ``chdb:///ABSOLUTE/PATH`` (embedded, the default), a bare path, or ``http(s)://``.

clickhouse-connect's chDB DSN does not take relative paths, so relative ones are resolved
here. Precedence: explicit argument > ``GENAI_AUDIT_DSN`` > ``./genai-audit-data``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from genai_audit.clickhouse.errors import ConfigError

ENV_DSN = "GENAI_AUDIT_DSN"
ENV_DATABASE = "GENAI_AUDIT_DATABASE"
DEFAULT_DATA_DIR = "genai-audit-data"
DEFAULT_DATABASE = "genai_audit"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def resolve_dsn(dsn: str | None = None) -> str:
    raw = dsn or os.environ.get(ENV_DSN) or DEFAULT_DATA_DIR
    scheme = urlsplit(raw).scheme.lower() if "://" in raw else ""
    if scheme in ("http", "https"):
        return raw
    if scheme == "chdb":
        path = raw[len("chdb://"):]
        if not path:
            raise ConfigError("chdb DSN needs a path: chdb:///absolute/path")
        return "chdb://" + str(Path(path).expanduser().resolve())
    if scheme:
        raise ConfigError(f"unsupported DSN scheme {scheme!r}: use chdb:///path, a path, "
                          "or http(s)://user:pass@host:8123")
    return "chdb://" + str(Path(raw).expanduser().resolve())


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb://")


def embedded_path(dsn: str) -> Path | None:
    return Path(dsn[len("chdb://"):]) if is_embedded(dsn) else None


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and report provenance."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def validate_identifier(name: str, what: str = "database") -> str:
    if not _IDENT.match(name):
        raise ConfigError(f"invalid {what} name {name!r}: letters, digits and _ only, "
                          "not starting with a digit, at most 63 characters")
    return name


def resolve_database(database: str | None = None) -> str:
    return validate_identifier(database or os.environ.get(ENV_DATABASE) or DEFAULT_DATABASE)
