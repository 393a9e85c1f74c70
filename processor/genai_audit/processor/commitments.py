"""Content commitments: ``prompt_hash`` / ``response_hash``.

HMAC-SHA256 under a per-tenant commitment secret over the content *as stored* (after
redaction). Keyed, so a stored hash cannot be matched against guessed prompts by anyone
without the keystore (no unkeyed hash of content is ever stored); whoever holds the key
(``genai-audit show``) can check that decrypted content matches its commitment.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from genai_audit.keystore import KeyStore
from genai_audit.processor.record import AuditRecord, Flag

PURPOSE = "commitment"


def commit(secret: bytes, text: str) -> bytes:
    return hmac.digest(secret, text.encode("utf-8"), "sha256")


class CommitmentStage:
    name = "commit"
    failure_flag = Flag.CONTENT_WITHHELD

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            secret = self.keys.tenant_secret(record.tenant_id, PURPOSE)
            record.prompt_hash = commit(secret, record.prompt_text)
            record.response_hash = commit(secret, record.response_text)
