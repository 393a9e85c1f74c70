"""Manifest signing, archive URLs and object names (no store needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genai_audit.clickhouse.archive import month_start, object_key
from genai_audit.clickhouse.archive_location import ArchiveLocation
from genai_audit.clickhouse.archive_manifest import (
    ArchivedObject,
    Manifest,
    ManifestError,
    open_signed,
    sign,
)
from genai_audit.clickhouse.errors import ConfigError


def _manifest() -> Manifest:
    m = Manifest(database="genai_audit")
    schema = m.add_schema([["id", "UUID"], ["tenant_id", "LowCardinality(String)"]])
    m.objects.append(ArchivedObject(
        key="tenant=acme/month=2026-01/part-00001.parquet", tenant_id="acme", month="2026-01",
        seq=1, rows=3, bytes=100, sha256="ab" * 32, rows_sha256="cd" * 32, schema=schema,
        first_event="2026-01-01T00:00:00+00:00", last_event="2026-01-31T00:00:00+00:00",
        ingested_after="1970-01-01T00:00:00+00:00", ingested_through="2026-03-01T00:00:00+00:00",
        expires_at="2027-01-31T00:00:00+00:00", content_expires_at="2026-03-01T00:00:00+00:00",
        written_at="2026-03-02T00:00:00+00:00"))
    return m


def test_sign_and_open_round_trip():
    key = Ed25519PrivateKey.generate()
    text = sign(_manifest(), key)
    opened = open_signed(text, key.public_key())
    assert opened.to_dict() == _manifest().to_dict()
    assert opened.ledger_checkpoint is None


@pytest.mark.parametrize("tamper, message", [
    (lambda d: d["manifest"]["objects"][0].update(rows=4), "signature is invalid"),
    (lambda d: d["manifest"].update(ledger_checkpoint={"root": "x"}), "signature is invalid"),
    (lambda d: d["signature"].update(public_key="00" * 32), "different key"),
    (lambda d: d.pop("signature"), "not a signed"),
    (lambda d: d["signature"].update(algorithm="rsa"), "unsupported"),
])
def test_tampered_manifests_are_refused(tamper, message):
    key = Ed25519PrivateKey.generate()
    doc = json.loads(sign(_manifest(), key))
    tamper(doc)
    with pytest.raises(ManifestError, match=message):
        open_signed(json.dumps(doc), key.public_key())


def test_locations():
    s3 = ArchiveLocation.parse("s3://audit-archive/prod/", endpoint_url="http://127.0.0.1:9000",
                               access_key_id="k", secret_access_key="s")
    assert s3.object_url("manifest.json") == "http://127.0.0.1:9000/audit-archive/prod/manifest.json"
    assert "'s'" not in repr(s3) and "'k'" not in repr(s3)  # credentials are not in repr
    aws = ArchiveLocation.parse("s3://audit-archive")
    assert aws.base == "https://audit-archive.s3.amazonaws.com"
    assert ArchiveLocation.parse("file:///tmp/x/../arch").base == "/tmp/arch"
    for bad in ("ftp://x/y", "s3://A_B/x", "s3://ok-bucket/a*b", "file://relative/x",
                "s3://k:s@bucket/x"):
        with pytest.raises(ConfigError):
            ArchiveLocation.parse(bad)
    with pytest.raises(ConfigError, match="both"):
        ArchiveLocation.parse("s3://ok-bucket/x", access_key_id="k")
    fn, params = s3.function("a.parquet", "Parquet", "id UUID")
    assert fn.startswith("s3(") and "'s'" not in fn and params["loc_secret"] == "s"


def test_object_keys_and_months():
    assert object_key("acme", "2026-01", 2) == "tenant=acme/month=2026-01/part-00002.parquet"
    weird = object_key("a/b c", "2026-01", 1)
    assert weird.startswith("tenant=a_b_c-") and "/" not in weird.split("/month=")[0][7:]
    assert object_key("a_b_c", "2026-01", 1) != weird  # sanitizing never merges tenants
    assert month_start(datetime(2026, 3, 15, 12, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
