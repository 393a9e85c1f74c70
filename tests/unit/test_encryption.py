from __future__ import annotations

from collections.abc import Sequence

import pytest

from genai_audit.clickhouse.writer import record_row
from genai_audit.keystore import ErasureMarker, KeyStore
from genai_audit.processor.commitments import CommitmentStage
from genai_audit.processor.encryption import (
    DecryptionError,
    EncryptionStage,
    open_sealed,
    seal,
)
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.pseudonym import PseudonymStage
from genai_audit.processor.record import AuditRecord, ContentState, Flag
from genai_audit.processor.render import RenderStage

PHI = "Patient Maria Gonzalez, MRN 00482913, reports chest pain"


def test_seal_binds_ciphertext_to_record_tenant_and_column(keystore):
    key = keystore.subject_keys("acme", ["alice"])["alice"]
    other = keystore.subject_keys("acme", ["bob"])["bob"]
    sealed = seal(key, "rec-1", "full_prompt_text", PHI)
    assert PHI not in sealed and "Gonzalez" not in sealed
    assert open_sealed(key, "rec-1", "full_prompt_text", sealed) == PHI
    assert seal(key, "rec-1", "full_prompt_text", PHI) != sealed  # fresh nonce each time
    for args in ((key, "rec-2", "full_prompt_text"), (key, "rec-1", "full_response_text"),
                 (other, "rec-1", "full_prompt_text")):
        with pytest.raises(DecryptionError):
            open_sealed(*args, sealed)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(DecryptionError):
        open_sealed(key, "rec-1", "full_prompt_text", tampered)
    with pytest.raises(DecryptionError, match="not valid ciphertext"):
        open_sealed(key, "rec-1", "full_prompt_text", "plain text, not base64!")


class _EraseInFlight:
    """A real erasure landing between the commit and encrypt stages (a race in production)."""

    name = "erase-in-flight"
    failure_flag = Flag.CONTENT_WITHHELD

    def __init__(self, keys: KeyStore, tenant: str, user: str) -> None:
        self.keys, self.tenant, self.user = keys, tenant, user

    def process(self, records: Sequence[AuditRecord]) -> None:
        self.keys.destroy_subject(self.tenant, self.user, ErasureMarker("e", "r", "2026-01-01T00:00:00"))


def _pipeline(keys: KeyStore, *middle: object) -> RecordPipeline:
    return RecordPipeline([PseudonymStage(keys), RenderStage(), CommitmentStage(keys),
                           *middle, EncryptionStage(keys)])  # type: ignore[list-item]


def test_encryption_fails_closed_per_record(make_span, keystore, caplog):
    bad = make_span(**{"enduser.id": "mallory", "gen_ai.input.messages":
                       f'[{{"role": "user", "parts": [{{"type": "text", "content": "{PHI}"}}]}}]'})
    good = make_span()
    records = _pipeline(keystore, _EraseInFlight(keystore, "acme", "mallory")).build([good, bad])
    sealed, withheld = records  # good is sealed before the batch fails on bad
    assert withheld.content_state is ContentState.WITHHELD
    assert {Flag.ENCRYPTION_FAILED, Flag.CONTENT_WITHHELD} <= withheld.flags
    assert (withheld.prompt_text, withheld.response_text, withheld.response_preview) == ("",) * 3
    assert withheld.content.is_empty() and withheld.prompt_tokens == 10  # metadata kept
    assert PHI not in repr(record_row(withheld)) and PHI not in caplog.text
    # The batch retry did not seal the good record twice: it still opens.
    assert sealed.content_state is ContentState.ENCRYPTED and not sealed.flags
    key = keystore.key_for_pseudonym("acme", sealed.user_key)
    assert open_sealed(key, sealed.id, "response_preview", sealed.response_preview) == "hello"


def test_records_without_a_user_use_the_tenants_no_subject_key(make_span, keystore):
    [record] = _pipeline(keystore).build([make_span(**{"enduser.id": None})])
    assert record.user_key == "" and Flag.NO_USER in record.flags
    key = keystore.key_for_pseudonym("acme", "")
    assert record.content_key_id == key.key_id
    assert open_sealed(key, record.id, "response_preview", record.response_preview) == "hello"


def test_nothing_to_encrypt_is_left_alone(make_span, keystore):
    records = RecordPipeline([PseudonymStage(keystore), RenderStage(capture_content=False),
                              CommitmentStage(keystore), EncryptionStage(keystore)]
                             ).build([make_span()])
    assert records[0].content_state is ContentState.NOT_CAPTURED
    assert records[0].content_key_id == "" and records[0].prompt_text == ""


def test_a_failing_keystore_never_lets_the_user_id_through(make_span, tmp_path, caplog):
    from genai_audit.config import Settings
    from genai_audit.keystore import LocalKeyStore
    from genai_audit.processor.factory import default_pipeline

    LocalKeyStore(tmp_path).tenant_secret("acme", "warm-up")
    (tmp_path / "master.key").unlink()  # the keystore now refuses every lookup
    broken = LocalKeyStore(tmp_path)
    [record] = default_pipeline(Settings.load(env={}), broken).build([make_span()])
    assert record.user_id is None and record.user_key == ""
    assert {Flag.PSEUDONYMIZATION_FAILED, Flag.CONTENT_WITHHELD} <= record.flags
    assert record.content_state is ContentState.WITHHELD and record.prompt_tokens == 10
    row = repr(record_row(record))  # the writer accepts it: metadata still lands
    assert "alice" not in row and "alice" not in caplog.text
