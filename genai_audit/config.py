"""Settings, with one precedence everywhere: argument/flag > environment > file > default.

* environment: ``GENAI_AUDIT_<NAME>`` (for example ``GENAI_AUDIT_SYNC_TOOLS``);
* file: TOML at ``GENAI_AUDIT_CONFIG`` or ``./genai-audit.toml`` (keys at the top level or
  under ``[genai_audit]``); a file named explicitly that does not exist is an error;
* every value is validated here, with an error that names the setting and its source.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "GENAI_AUDIT_"
ENV_CONFIG = "GENAI_AUDIT_CONFIG"
DEFAULT_CONFIG_FILE = "genai-audit.toml"


class SettingsError(ValueError):
    """A setting that cannot be used. The message names the setting and where it came from."""


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: expected a whole number, got {value!r}") from None
    if number <= 0:
        raise SettingsError(f"{name}: must be > 0, got {number}")
    return number


MAX_RETENTION_DAYS = 10_950  # 30 years; the TTL's DateTime must stay below 2106


def _retention_days(name: str, value: Any) -> int:
    days = _positive_int(name, value)
    if days > MAX_RETENTION_DAYS:
        raise SettingsError(f"{name}: at most {MAX_RETENTION_DAYS} days (30 years), got {days}")
    return days


def _non_negative_int(name: str, value: Any) -> int:
    return 0 if str(value).strip() == "0" else _positive_int(name, value)


SHORTEST_RETENTION_S = 86_400  # a policy keeps a record at least one day


def _maintenance_interval(name: str, value: Any) -> int:
    """0 (off: cron runs ``genai-audit maintain``) or shorter than the shortest retention, so
    the hold sweep always runs between a record's arrival and its expiry."""
    seconds = _non_negative_int(name, value)
    if seconds >= SHORTEST_RETENTION_S:
        raise SettingsError(f"{name}: must be shorter than the shortest retention (1 day = "
                            f"{SHORTEST_RETENTION_S} s) so holds are swept before records "
                            f"expire, got {seconds}")
    return seconds


def parse_bool(value: Any) -> bool:
    """true/false, 1/0, yes/no, on/off (any case); ValueError otherwise. Shared by every
    settings reader (this module, the redaction policy)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _bool(name: str, value: Any) -> bool:
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _str_list(name: str, value: Any) -> frozenset[str]:
    if isinstance(value, list | tuple | set | frozenset):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = value.split(",")
    else:
        raise SettingsError(f"{name}: expected a comma-separated list, got {value!r}")
    return frozenset(item.strip() for item in items if item.strip())


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise SettingsError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return text
    return check


def _optional_str(name: str, value: Any) -> str | None:
    text = str(value).strip()
    return text or None


_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_WRAPPER_SPEC = re.compile(rf"^(?:[A-Za-z0-9_.-]+|{_IDENTIFIER}(?:\.{_IDENTIFIER})*"
                           rf":{_IDENTIFIER}(?:\.{_IDENTIFIER})*)$")


def _wrapper_spec(name: str, value: Any) -> str | None:
    """A key wrapper: an entry point name or ``module:attr``; empty for the local key."""
    text = str(value).strip()
    if text and not _WRAPPER_SPEC.match(text):
        raise SettingsError(f"{name}: expected an entry point name or module:attribute, "
                            f"got {value!r}")
    return text or None


def _endpoint(name: str, value: Any) -> str:
    """``host:port`` to listen on; ``off`` (or empty) disables the listener."""
    text = str(value).strip()
    if text.lower() in ("", "off", "none"):
        return ""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name}: expected host:port or off, got {value!r}")
    return f"{host or '0.0.0.0'}:{int(port)}"  # noqa: S104 - ":port" asks for every interface


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "dsn": _optional_str,
    "database": _optional_str,
    "keystore_dir": _optional_str,
    "master_key_file": _optional_str,
    "key_wrapper": _wrapper_spec,
    "pricing_file": _optional_str,
    "capture_content": _bool,
    "retention_days": _retention_days,
    "sync_tools": _str_list,
    "sync_timeout_ms": _positive_int,
    "sync_on_failure": _choice("raise", "continue"),
    "max_queue_size": _positive_int,
    "max_batch_size": _positive_int,
    "schedule_delay_ms": _positive_int,
    "export_timeout_ms": _positive_int,
    "max_retries": _non_negative_int,
    "archive_url": _optional_str,
    "archive_hot_days": _positive_int,
    "s3_endpoint_url": _optional_str,
    "s3_access_key_id": _optional_str,
    "s3_secret_access_key": _optional_str,
    "spool_dir": _optional_str,
    "spool_max_mb": _positive_int,
    "gateway_grpc_endpoint": _endpoint,
    "gateway_http_endpoint": _endpoint,
    "gateway_workers": _positive_int,
    "gateway_tokens_file": _optional_str,
    "gateway_allow_unauthenticated": _bool,
    "gateway_tls_cert": _optional_str,
    "gateway_tls_key": _optional_str,
    "gateway_tenant_mismatch": _choice("reject", "reattribute"),
    "gateway_max_message_mb": _positive_int,
    "gateway_max_attribute_kb": _positive_int,
    "gateway_read_endpoint": _endpoint,
    "gateway_readers_file": _optional_str,
    "ledger_checkpoint_records": _positive_int,
    "ledger_checkpoint_seconds": _positive_int,
    "cluster": _optional_str,
    "maintenance_interval_seconds": _maintenance_interval,
}
_SECRETS = frozenset({"s3_secret_access_key"})  # never shown by describe()


@dataclass(frozen=True)
class Settings:
    dsn: str | None = None  # None: GENAI_AUDIT_DSN or ./genai-audit-data (see clickhouse.dsn)
    database: str | None = None  # None: genai_audit
    keystore_dir: str | None = None  # None: "<store dir>-keys" beside an embedded store
    master_key_file: str | None = None  # None: <keystore dir>/master.key (unless
    #                                     GENAI_AUDIT_MASTER_KEY holds the key itself)
    # A KMS/Vault plug-in wrapping the keystore's keys instead of the local master key: an
    # entry point of genai_audit.key_wrappers or module:attr (genai_audit.masterkey)
    key_wrapper: str | None = None
    pricing_file: str | None = None  # extra/overriding prices (JSON)
    capture_content: bool = True  # False: metadata only, no content stored at all
    retention_days: int = 365
    sync_tools: frozenset[str] = field(default_factory=frozenset)  # tools written synchronously
    sync_timeout_ms: int = 5000
    sync_on_failure: str = "raise"  # raise: the LLM call raises; continue: log an alarm
    max_queue_size: int = 20_000
    max_batch_size: int = 512
    # At most ~1 insert per second below max_batch_size: ClickHouse's guidance (each insert
    # writes a part; the embedded engine spends 20-30 ms of CPU per insert whatever its size)
    schedule_delay_ms: int = 1000
    export_timeout_ms: int = 30_000
    max_retries: int = 3
    archive_url: str | None = None  # s3://bucket/prefix or file:///dir, for archive/maintain
    archive_hot_days: int = 60  # records younger than this stay out of the archive
    s3_endpoint_url: str | None = None  # S3-compatible endpoint (MinIO, moto...); None: AWS
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = field(default=None, repr=False)
    # durability: the on-disk spool used when the store is unreachable (exporter and gateway)
    spool_dir: str | None = None  # None: "<store dir>-spool" beside an embedded store
    spool_max_mb: int = 1024
    # gateway (`genai-audit serve`); in a TOML file also accepted as a [gateway] table
    gateway_grpc_endpoint: str = "127.0.0.1:4317"  # "" (off): no gRPC listener
    gateway_http_endpoint: str = "127.0.0.1:4318"  # "" (off): no HTTP listener
    gateway_workers: int = 1  # decode + pipeline processes sharing the listeners
    gateway_tokens_file: str | None = None  # TOML of sha256 token hashes -> tenant
    gateway_allow_unauthenticated: bool = False  # local development only
    gateway_tls_cert: str | None = None
    gateway_tls_key: str | None = None
    gateway_tenant_mismatch: str = "reject"  # reject | reattribute (flagged)
    gateway_max_message_mb: int = 16
    gateway_max_attribute_kb: int = 1024
    # the store owner's read interface (ClickHouse HTTP, docs/deploy.md): "" (off) or
    # host:port, e.g. 127.0.0.1:8124; readers authenticate with the readers file's tokens
    gateway_read_endpoint: str = ""
    gateway_readers_file: str | None = None  # TOML of sha256 reader token hashes -> role
    ledger_checkpoint_records: int = 4096  # sign a checkpoint after this many records...
    ledger_checkpoint_seconds: int = 30  # ...or this long after the last one (docs/ledger.md)
    cluster: str | None = None  # a ClickHouse cluster: migrations run ON CLUSTER, replicated
    # the store owner's maintenance (holds, retention, archive when archive_url is set):
    # every this many seconds, first one interval after start; 0: off (cron runs
    # `genai-audit maintain`). Below one day, the shortest retention (docs/retention.md)
    maintenance_interval_seconds: int = 3600
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # The TOML file these settings were read from (None: none), so that every component that
    # reads a table of it (the redaction policy's [redaction]) reads the same file.
    config_file: str | None = field(default=None, compare=False)

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             env: Mapping[str, str] | None = None, config_file: str | Path | None = None
             ) -> Settings:
        """Merge file < environment < overrides (None values in overrides are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        path, required = config_path(env, config_file)
        for name, value in _read_file(path, required).items():
            values[name], sources[name] = _parse(name, value, f"file {path}"), f"file {path}"
        for name in _PARSERS:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name], sources[name] = _parse(name, env[key], f"env {key}"), f"env {key}"
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            if name not in _PARSERS:
                raise SettingsError(f"unknown setting {name!r}")
            values[name], sources[name] = _parse(name, value, "argument"), "argument"
        return cls(**values, sources=sources,
                   config_file=str(path) if path.exists() else None)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """These settings with flag values on top (validated; None values are ignored)."""
        values, sources = {}, dict(self.sources)
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in _PARSERS:
                raise SettingsError(f"unknown setting {name!r}")
            values[name], sources[name] = _parse(name, value, "argument"), "argument"
        return replace(self, **values, sources=sources)

    def describe(self) -> dict[str, tuple[Any, str]]:
        """Each setting with its value and where it came from (for ``--help``-style output)."""
        return {f.name: ("***" if f.name in _SECRETS and getattr(self, f.name) else
                         getattr(self, f.name), self.sources.get(f.name, "default"))
                for f in fields(self) if f.name not in ("sources", "config_file")}


def _parse(name: str, value: Any, source: str) -> Any:
    try:
        return _PARSERS[name](name, value)
    except SettingsError as exc:
        raise SettingsError(f"{exc} (from {source})") from None


def config_path(env: Mapping[str, str] | None = None,
                config_file: str | Path | None = None) -> tuple[Path, bool]:
    """The config file to read and whether it must exist (named explicitly)."""
    env = os.environ if env is None else env
    if config_file is not None:
        return Path(config_file), True
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]), True
    return Path(DEFAULT_CONFIG_FILE), False


# Tables of the file that other components read, each with the same file (see
# Settings.config_file): [redaction] by the redaction policy, [limits] by the guard's
# limits, [gateway] above.
_READ_ELSEWHERE = frozenset({"redaction", "gateway", "limits"})
# Tables that look plausible but nothing reads: name where their content belongs.
_HINTS = {
    "regions": "[redaction.regions]",
    "retention": "retention_days, or `genai-audit retention set` per tenant",
    "ledger": "ledger_checkpoint_records / ledger_checkpoint_seconds",
    "tools": "[redaction.tools]",
    "tenants": "[redaction.tenants]",
}


def read_toml(path: Path, required: bool, what: str = "config file",
              error: type[SettingsError] = SettingsError) -> dict[str, Any] | None:
    """A TOML file parsed, or None when it does not exist and need not. The one reader of
    the settings file (this module, the redaction policy's and the limits' tables): every
    error names the file and is an ``error`` (a ``SettingsError``)."""
    if not path.exists():
        if required:
            raise error(f"{what} {path} does not exist")
        return None
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}: invalid TOML: {exc}") from exc


def _read_file(path: Path, required: bool) -> dict[str, Any]:
    data = read_toml(path, required)
    if data is None:
        return {}
    table = data.get("genai_audit", data)
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [genai_audit] must be a table")
    gateway = table.get("gateway", {})
    if not isinstance(gateway, dict):
        raise SettingsError(f"config file {path}: [gateway] must be a table")
    table = {**table, **{f"gateway_{key}": value for key, value in gateway.items()}}
    unknown = sorted(set(table) - set(_PARSERS) - _READ_ELSEWHERE)
    if unknown:
        hints = [f"{key} (did you mean {_HINTS[key]}?)" if key in _HINTS else key
                 for key in unknown]
        raise SettingsError(f"config file {path}: unknown setting(s) {', '.join(hints)}: "
                            "nothing reads them (see README, Configuration)")
    return {k: v for k, v in table.items() if k in _PARSERS}
