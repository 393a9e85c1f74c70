"""Encryption at rest: content columns become AES-256-GCM ciphertext under the subject's DEK.

Runs after ``commit`` (commitments are over the stored plaintext) and before anything is
written. Every content column (``full_prompt_text``, ``full_response_text``,
``response_preview``: messages, tool calls and tool results all live in them) is sealed
separately, with the record id, the tenant and the column name as associated data, so a
ciphertext cannot be moved to another record, tenant or column without failing to open.
Metadata (tenant, pseudonym, tool, model, tokens, cost, time, flags) stays in clear for
SQL audits.

Stored form: ``base64(version 0x01 || 12-byte nonce || ciphertext+tag)`` in the same String
columns, ``content_state = 'encrypted'`` and ``content_key_id`` naming the DEK. Destroying
the DEK (erasure) leaves these bytes, and so the ledger's hashes over them, untouched.

Fail closed: a record that cannot be encrypted is written without content, flagged
``encryption_failed`` (the pipeline withholds it).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag

from genai_audit.keystore import KeyStore, SubjectKey
from genai_audit.processor.commitments import BatchKeys
from genai_audit.processor.record import AuditRecord, ContentState, Flag

CIPHER_VERSION = b"\x01"
NONCE_BYTES = 12
CONTENT_COLUMNS = ("full_prompt_text", "full_response_text", "response_preview")
_AAD_PREFIX = b"genai-audit/content/v1"


class DecryptionError(ValueError):
    """A ciphertext that does not open under the given key (wrong key, tampered, moved)."""


def _aad(record_id: str, tenant_id: str, column: str) -> bytes:
    return b"\0".join((_AAD_PREFIX, record_id.encode(), tenant_id.encode(), column.encode()))


def seal(key: SubjectKey, record_id: str, column: str, text: str) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = key.aead().encrypt(nonce, text.encode("utf-8"),
                                     _aad(record_id, key.tenant_id, column))
    return base64.b64encode(CIPHER_VERSION + nonce + sealed).decode("ascii")


def open_sealed(key: SubjectKey, record_id: str, column: str, stored: str) -> str:
    try:
        blob = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError(f"record {record_id}: {column} is not valid ciphertext") from None
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != CIPHER_VERSION:
        raise DecryptionError(f"record {record_id}: {column} has an unknown cipher format")
    try:
        plain = key.aead().decrypt(blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:],
                                        _aad(record_id, key.tenant_id, column))
    except InvalidTag:
        raise DecryptionError(f"record {record_id}: {column} does not open under key "
                              f"{key.key_id} (tampered, moved, or wrong key)") from None
    return plain.decode("utf-8")


class EncryptionStage:
    name = "encrypt"
    failure_flag = Flag.ENCRYPTION_FAILED

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def process(self, records: Sequence[AuditRecord]) -> None:
        key_of = BatchKeys(self.keys, records)
        for record in records:
            if record.content_state is not ContentState.PLAINTEXT:
                continue  # already sealed (a retry), withheld, or nothing captured
            key = key_of(record)
            prompt = seal(key, record.id, "full_prompt_text", record.prompt_text)
            response = seal(key, record.id, "full_response_text", record.response_text)
            preview = seal(key, record.id, "response_preview", record.response_preview)
            record.prompt_text, record.response_text = prompt, response
            record.response_preview = preview
            record.content_key_id = key.key_id
            record.content_state = ContentState.ENCRYPTED
