"""Pseudonymize the user: the plaintext user id never leaves this stage.

``gdpr_pseudonymized_user_key`` is a random 128-bit pseudonym the keystore assigns to each
(tenant, user) on first sight (``KeyStore.subject_keys``), together with the subject's data
key. It is stable for as long as the subject exists, so reports group by it, and it
reveals nothing: the only link back to the user id is the keystore row, which erasure
(GDPR Art. 17) deletes. A keyed hash of the user id would stay recomputable after
erasure; a random pseudonym does not.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from genai_audit.keystore import KeyStore
from genai_audit.processor.record import AuditRecord, Flag

_log = logging.getLogger(__name__)


def pseudonym_of(keys: KeyStore, tenant_id: str, user_id: str) -> str | None:
    """The stored pseudonym of a live subject (None if unknown or erased). Never creates."""
    subject = keys.find_subject(tenant_id, user_id)
    return None if subject is None else subject.pseudonym


class PseudonymStage:
    """Never raises on a keystore failure: the user id must not survive this stage, so the
    records of a failed lookup lose their user key and their content (flagged) instead.

    A record that started before an erasure in its tenant and whose user has had a key only
    since then (in flight during the erasure: queued, retried, replayed) may belong to the
    erased subject, and the keystore keeps nothing that could tell (erasure is unlinkable):
    it is stored without content and without pseudonym, flagged ``subject_erased``. Erasure
    thus covers what was on its way to the store; the cost is that a new user's first
    records, if they were in flight across an erasure in the same tenant, lose their content
    and pseudonym too (metadata kept)."""

    name = "pseudonymize"
    failure_flag = Flag.PSEUDONYMIZATION_FAILED

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def process(self, records: Sequence[AuditRecord]) -> None:
        by_tenant: dict[str, list[AuditRecord]] = defaultdict(list)
        for record in records:
            if record.user_id is not None:
                by_tenant[record.tenant_id].append(record)
        for tenant, group in by_tenant.items():
            try:
                subjects = self.keys.subject_keys(tenant, (r.user_id or "" for r in group))
            except Exception as exc:  # the keystore is down or refuses: fail closed
                _log.error("pseudonymize: keystore failed (%s) for %d record(s); their "
                           "content is withheld", type(exc).__name__, len(group))
                for record in group:
                    record.user_id = None
                    record.withhold_content(self.failure_flag)
                continue
            for record in group:
                key = subjects[record.user_id or ""]
                record.user_id = None
                if key.erased_before is not None and record.event_timestamp < key.erased_before:
                    # In flight across an erasure, its user new since: it may belong to the
                    # erased subject, so it keeps no content and no link to this pseudonym.
                    record.withhold_content(Flag.SUBJECT_ERASED)
                    continue
                record.user_key = key.pseudonym
