"""Where an archive lives, and how ClickHouse reads and writes it.

``s3://bucket/prefix`` (an S3-compatible endpoint from settings or the AWS environment, AWS
otherwise) or
``file:///abs/dir``. All archive I/O goes through ClickHouse's ``s3()`` / ``file()`` table
functions, so the store writes the Parquet itself and the same code runs embedded or against
a server (for a server, ``file://`` paths are on the server, under its ``user_files_path``).

Credentials come from settings or the environment, are passed as bound parameters, and are
scrubbed from every error this module raises: they are never logged or printed.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clickhouse_connect.driver.binding import format_str

from genai_audit.clickhouse.errors import ConfigError, StoreError
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GLOB_CHARS = set("*?{}[],")


class ArchiveAccessError(StoreError):
    """The archive location cannot be read or written (message free of credentials)."""

    code = "archive_access"


@dataclass(frozen=True)
class ArchiveLocation:
    url: str  # as the user wrote it (never contains credentials)
    kind: str  # "s3" or "file"
    base: str  # http(s)://endpoint/bucket/prefix or /abs/dir, without a trailing slash
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, *, endpoint_url: str | None = None,
              access_key_id: str | None = None,
              secret_access_key: str | None = None,
              region: str | None = None) -> ArchiveLocation:
        parts = urlsplit(url)
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise ConfigError(f"archive URL {url!r}: use file:///absolute/dir")
            base = str(Path(parts.path).resolve())
            _check_key(base, url)
            return cls(url, "file", base)
        if parts.scheme != "s3":
            raise ConfigError(f"archive URL {url!r}: use s3://bucket/prefix or file:///dir")
        if parts.username or parts.password or parts.query:
            raise ConfigError("archive URL: put credentials in settings or the environment "
                              "(GENAI_AUDIT_S3_ACCESS_KEY_ID / GENAI_AUDIT_S3_SECRET_ACCESS_KEY),"
                              " not in the URL")
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not _BUCKET.match(bucket):
            raise ConfigError(f"archive URL {url!r}: {bucket!r} is not a valid bucket name")
        _check_key(prefix, url)
        if endpoint_url:
            endpoint = endpoint_url.rstrip("/")
            if urlsplit(endpoint).scheme not in ("http", "https"):
                raise ConfigError(f"S3 endpoint {endpoint_url!r}: use http(s)://host:port")
            base = f"{endpoint}/{bucket}"
        elif region:
            if not re.fullmatch(r"[a-z0-9-]{2,32}", region):
                raise ConfigError(f"AWS region {region!r} is not a region name")
            base = f"https://{bucket}.s3.{region}.amazonaws.com"
        else:
            base = f"https://{bucket}.s3.amazonaws.com"
        if prefix:
            base += "/" + prefix
        if bool(access_key_id) != bool(secret_access_key):
            raise ConfigError("S3 credentials need both an access key id and a secret")
        return cls(url.rstrip("/"), "s3", base, access_key_id or None, secret_access_key or None)

    def object_url(self, key: str) -> str:
        return f"{self.base}/{key}"

    def function(self, key: str, fmt: str, structure: str | None = None,
                 prefix: str = "loc") -> tuple[str, dict[str, Any]]:
        """A table-function call for ``key`` (a key, or a glob) and its bound parameters."""
        params: dict[str, Any] = {f"{prefix}_url": self.object_url(key)}
        args = [f"{{{prefix}_url:String}}"]
        if self.kind == "s3" and self.access_key_id:
            params[f"{prefix}_key"] = self.access_key_id
            params[f"{prefix}_secret"] = self.secret_access_key
            args += [f"{{{prefix}_key:String}}", f"{{{prefix}_secret:String}}"]
        args.append(format_str(fmt))
        if structure is not None:
            params[f"{prefix}_structure"] = structure
            args.append(f"{{{prefix}_structure:String}}")
        name = "s3" if self.kind == "s3" else "file"
        return f"{name}({', '.join(args)})", params

    def engine(self, key: str, fmt: str) -> str:
        """An ``ENGINE = ...`` clause (DDL takes no bound parameters: values are quoted)."""
        if self.kind == "file":
            return f"File({fmt}, {format_str(self.object_url(key))})"
        args = [format_str(self.object_url(key))]
        if self.access_key_id and self.secret_access_key:
            args += [format_str(self.access_key_id), format_str(self.secret_access_key)]
        return f"S3({', '.join([*args, format_str(fmt)])})"

    @property
    def write_settings(self) -> dict[str, Any]:
        if self.kind == "s3":
            return {"s3_truncate_on_insert": 1}
        return {"engine_file_truncate_on_insert": 1}

    def scrub(self, text: str) -> str:
        for secret in (self.secret_access_key, self.access_key_id):
            if secret:
                text = text.replace(secret, "***")
        return text

    @contextlib.contextmanager
    def guarded(self, what: str) -> Iterator[None]:
        """Re-raise store errors as ``ArchiveAccessError`` with credentials scrubbed."""
        try:
            yield
        except StoreError as exc:
            first = self.scrub(str(exc)).splitlines()[0][:400]
            raise ArchiveAccessError(f"{what} ({self.url}): {first}") from None

    # -- simple object I/O through ClickHouse ----------------------------------------------
    def list(self, store: Store, pattern: str = "**") -> dict[str, int]:
        """Object keys (relative to the base) and sizes matching ``pattern``."""
        fn, params = self.function(pattern, "One")
        with self.guarded("cannot list the archive"):
            rows = store.rows(f"SELECT _path, _size FROM {fn}", params)  # noqa: S608
        prefix = self._path_prefix()
        found: dict[str, int] = {}
        for path, size in rows:
            text = str(path)
            if text.startswith(prefix):
                found[text[len(prefix):]] = int(size or 0)
        return found

    def read_text(self, store: Store, key: str) -> str | None:
        if key not in self.list(store, key + "*"):  # a glob: a missing key is no error
            return None
        fn, params = self.function(key, "RawBLOB", "raw String")
        with self.guarded(f"cannot read {key}"):
            return str(store.scalar(f"SELECT raw FROM {fn}", params))  # noqa: S608

    def write_text(self, store: Store, key: str, text: str) -> None:
        fn, params = self.function(key, "RawBLOB", "raw String")
        with self.guarded(f"cannot write {key}"):
            store.command(f"INSERT INTO FUNCTION {fn} SELECT {{text:String}}",
                          {**params, "text": text}, settings=self.write_settings)

    def object_digest(self, store: Store, key: str) -> tuple[str, int]:
        """SHA-256 (hex) and size in bytes of one object, computed by reading it back."""
        fn, params = self.function(key, "RawBLOB", "raw String")
        with self.guarded(f"cannot read {key}"):
            rows = store.rows(f"SELECT lower(hex(SHA256(raw))), length(raw) FROM {fn}", params)  # noqa: S608
        if not rows:
            raise ArchiveAccessError(f"cannot read {key} ({self.url}): empty object")
        return str(rows[0][0]), int(rows[0][1])

    def _path_prefix(self) -> str:
        if self.kind == "file":
            return self.base + "/"
        path = urlsplit(self.base).path.lstrip("/")  # bucket/prefix (path-style endpoint)
        if not urlsplit(self.base).netloc.endswith(".amazonaws.com"):
            return path + "/"
        bucket = urlsplit(self.base).netloc.split(".s3.")[0]
        return f"{bucket}/{path}/" if path else f"{bucket}/"


def location_from_settings(url: str, settings: Settings,
                           env: Mapping[str, str] | None = None) -> ArchiveLocation:
    """Build a location from a URL, the settings' endpoint and credentials, and, where the
    settings name none, the standard AWS configuration the user already has (see
    ``aws_defaults``)."""
    aws = aws_defaults(os.environ if env is None else env)
    key, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    if not key and not secret:
        key, secret = aws.get("access_key_id"), aws.get("secret_access_key")
    return ArchiveLocation.parse(url, endpoint_url=settings.s3_endpoint_url or aws.get("endpoint"),
                                 access_key_id=key, secret_access_key=secret,
                                 region=aws.get("region"))


def aws_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """The AWS SDKs' conventions, lowest precedence below genai-audit's own settings:

    * endpoint: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``;
    * credentials: ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY``, else the profile
      ``AWS_PROFILE`` (default ``default``) of ``AWS_SHARED_CREDENTIALS_FILE``
      (default ``~/.aws/credentials``);
    * region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else the profile's ``region`` in
      ``AWS_CONFIG_FILE`` (default ``~/.aws/config``).

    Temporary (session-token) credentials are not supported: give a key pair."""
    found: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        found["endpoint"] = endpoint
    profile = env.get("AWS_PROFILE") or "default"
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        found["access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        found["secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
    else:
        creds = _ini_section(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials",
                             profile)
        if creds.get("aws_access_key_id") and creds.get("aws_secret_access_key"):
            found["access_key_id"] = creds["aws_access_key_id"]
            found["secret_access_key"] = creds["aws_secret_access_key"]
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or _ini_section(
        env.get("AWS_CONFIG_FILE") or "~/.aws/config",
        profile if profile == "default" else f"profile {profile}").get("region")
    if region:
        found["region"] = region
    return found


def _ini_section(path: str, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(Path(path).expanduser(), encoding="utf-8")
    except (OSError, configparser.Error):
        return {}
    return dict(parser[section]) if parser.has_section(section) else {}


def _check_key(path: str, url: str) -> None:
    if _GLOB_CHARS & set(path):
        raise ConfigError(f"archive URL {url!r}: the path must not contain any of "
                          f"{''.join(sorted(_GLOB_CHARS))}")
