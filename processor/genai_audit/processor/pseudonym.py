"""Pseudonymize the user: the plaintext user id never leaves this stage.

``gdpr_pseudonymized_user_key`` = hex(HMAC-SHA256(tenant secret, user id)). The secret is
per tenant and lives in the keystore, so the same user maps to the same key within a
tenant (reports group by it) and the key reveals nothing without the keystore.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from genai_audit.keystore import KeyStore
from genai_audit.processor.record import AuditRecord, Flag

PURPOSE = "pseudonym"
USER_KEY_CHARS = 32  # 128 bits of the HMAC, hex


def pseudonymize(user_id: str, secret: bytes) -> str:
    return hmac.digest(secret, user_id.encode("utf-8"), "sha256").hex()[:USER_KEY_CHARS]


class PseudonymStage:
    name = "pseudonymize"
    failure_flag = Flag.CONTENT_WITHHELD

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def process(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            if record.user_id is not None:
                secret = self.keys.tenant_secret(record.tenant_id, PURPOSE)
                record.user_key = pseudonymize(record.user_id, secret)
            record.user_id = None
