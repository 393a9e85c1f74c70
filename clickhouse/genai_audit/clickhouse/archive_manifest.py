"""The archive manifest: what was archived, where, and proof that it is unchanged.

One JSON object, ``manifest.json`` at the archive's root, saved during and after a run so an
interrupted run resumes from it::

    {"manifest": {
        "format": "genai-audit-archive/1", "database": "genai_audit",
        "schemas": {"<schema id>": [["id", "UUID"], ...]},
        "objects": [{"key": "tenant=acme/month=2026-01/part-00001.parquet", "tenant_id": "acme",
                     "month": "2026-01", "seq": 1, "rows": 1234, "bytes": 56789,
                     "sha256": "<hex of the object's bytes>",
                     "rows_sha256": "<order-independent digest of the archived rows>",
                     "schema": "<schema id>", "first_event": "...", "last_event": "...",
                     "ingested_after": "...", "ingested_through": "...",
                     "expires_at": "...", "content_expires_at": "...", "written_at": "..."}],
        "ledger_checkpoint": {"logs": [{"log_id": "...", "tree_size": 8192,
                                        "note": "<C2SP signed note>"}]},
        "updated_at": "..."},
     "signature": {"algorithm": "ed25519", "public_key": "<hex>", "value": "<hex>"}}

The signature covers the canonical JSON of ``manifest`` (sorted keys, no spaces, UTF-8).
``ledger_checkpoint`` names the ledger's latest signed checkpoint of every log of the archived
tenants (``archive.ledger_anchor``); ``archive_leaves`` checks each note is in the store's
signed chain, and every archived row against the leaves that chain signed. ``null`` in
manifests written before archives recorded it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT = "genai-audit-archive/1"
MANIFEST_KEY = "manifest.json"


class ManifestError(ValueError):
    """A manifest that cannot be trusted: unreadable, unsigned, or signed by another key."""


@dataclass(frozen=True)
class ArchivedObject:
    key: str
    tenant_id: str
    month: str  # YYYY-MM
    seq: int
    rows: int
    bytes: int
    sha256: str
    rows_sha256: str
    schema: str
    first_event: str
    last_event: str
    ingested_after: str
    ingested_through: str
    expires_at: str
    content_expires_at: str
    written_at: str


@dataclass
class Manifest:
    database: str
    schemas: dict[str, list[list[str]]] = field(default_factory=dict)
    objects: list[ArchivedObject] = field(default_factory=list)
    ledger_checkpoint: dict[str, Any] | None = None  # archive.ledger_anchor's answer
    updated_at: str = ""
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "database": self.database, "schemas": self.schemas,
                "objects": [asdict(o) for o in self.objects],
                "ledger_checkpoint": self.ledger_checkpoint, "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != FORMAT:
            raise ManifestError(f"unknown manifest format {data.get('format')!r}")
        try:
            return cls(database=str(data["database"]), schemas=dict(data["schemas"]),
                       objects=[ArchivedObject(**o) for o in data["objects"]],
                       ledger_checkpoint=data.get("ledger_checkpoint"),
                       updated_at=str(data.get("updated_at", "")))
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"malformed manifest: {exc}") from None

    def objects_for(self, tenant_id: str, month: str) -> list[ArchivedObject]:
        return [o for o in self.objects if o.tenant_id == tenant_id and o.month == month]

    def add_schema(self, columns: list[list[str]]) -> str:
        schema_id = hashlib.sha256(canonical(columns)).hexdigest()[:16]
        self.schemas.setdefault(schema_id, columns)
        return schema_id


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign(manifest: Manifest, key: Ed25519PrivateKey) -> str:
    """The signed manifest document (JSON text) for ``manifest.json``."""
    body = manifest.to_dict()
    signature = {"algorithm": "ed25519", "public_key": public_key_hex(key.public_key()),
                 "value": key.sign(canonical(body)).hex()}
    return json.dumps({"manifest": body, "signature": signature}, sort_keys=True, indent=1,
                      ensure_ascii=False) + "\n"


def open_signed(text: str, public_key: Ed25519PublicKey) -> Manifest:
    """Parse a signed manifest and check its signature against ``public_key``."""
    try:
        doc = json.loads(text)
        body, signature = doc["manifest"], doc["signature"]
        value = bytes.fromhex(signature["value"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"manifest is not a signed genai-audit manifest ({exc})") from None
    if signature.get("algorithm") != "ed25519":
        raise ManifestError(f"unsupported signature algorithm {signature.get('algorithm')!r}")
    if signature.get("public_key") != public_key_hex(public_key):
        raise ManifestError("manifest is signed by a different key than the one given")
    try:
        public_key.verify(value, canonical(body))
    except InvalidSignature:
        raise ManifestError("manifest signature is invalid: the manifest was changed "
                            "after it was signed") from None
    return Manifest.from_dict(body)
