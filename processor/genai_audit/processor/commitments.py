"""Content commitments: ``prompt_hash`` / ``response_hash``.

HMAC-SHA256 over the content *as stored* (after redaction, before encryption), keyed by a
key derived from the data subject's DEK (``SubjectKey.derive("commitment")``). Keyed, so a
stored hash cannot be matched against guessed prompts by anyone without the keystore;
keyed *per subject*, so once the subject is erased nobody, keystore holders included, can
confirm a guess of the erased content. Whoever reads through ``genai-audit show`` checks
that the decrypted content matches its commitment.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from genai_audit.keystore import KeyStore, SubjectKey
from genai_audit.processor.record import AuditRecord, Flag

PURPOSE = "commitment"


class SubjectKeyMissing(LookupError):
    """The record's subject has no key (erased while the record was in flight)."""


def commit(secret: bytes, text: str) -> bytes:
    return hmac.digest(secret, text.encode("utf-8"), "sha256")


def commitment_key(subject: SubjectKey) -> bytes:
    return subject.derive(PURPOSE)


class BatchKeys:
    """The subject keys of one batch: one keystore call per tenant, not per record."""

    def __init__(self, keys: KeyStore, records: Sequence[AuditRecord]) -> None:
        by_tenant: dict[str, set[str]] = {}
        for record in records:
            by_tenant.setdefault(record.tenant_id, set()).add(record.user_key)
        self._keys: dict[tuple[str, str], SubjectKey | None] = {
            (tenant, pseudonym): key for tenant, pseudonyms in by_tenant.items()
            for pseudonym, key in keys.keys_for_pseudonyms(tenant, pseudonyms).items()}

    def __call__(self, record: AuditRecord) -> SubjectKey:
        key = self._keys.get((record.tenant_id, record.user_key))
        if key is None:
            raise SubjectKeyMissing(f"record {record.id}: the subject's key is gone (erased)")
        return key


class CommitmentStage:
    name = "commit"
    failure_flag = Flag.CONTENT_WITHHELD

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def process(self, records: Sequence[AuditRecord]) -> None:
        key_of = BatchKeys(self.keys, records)
        for record in records:  # withheld records too: a commitment to the empty content
            secret = commitment_key(key_of(record))
            record.prompt_hash = commit(secret, record.prompt_text)
            record.response_hash = commit(secret, record.response_text)
