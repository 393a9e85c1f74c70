from __future__ import annotations

import json
import stat

import pytest

from genai_audit.keystore import KeyStoreError, LocalKeyStore


def test_secrets_persist_per_tenant_and_purpose(tmp_path):
    ks = LocalKeyStore(tmp_path / "k")
    a = ks.tenant_secret("acme", "pseudonym")
    assert len(a) == 32
    assert a != ks.tenant_secret("acme", "commitment") != ks.tenant_secret("globex", "pseudonym")
    again = LocalKeyStore(tmp_path / "k")  # a second process sees the same secret
    assert again.tenant_secret("acme", "pseudonym") == a
    assert again.public_key_pem() == ks.public_key_pem()
    mode = stat.S_IMODE((tmp_path / "k" / "keystore.json").stat().st_mode)
    assert mode == 0o600


def test_two_instances_do_not_lose_each_others_secrets(tmp_path):
    one, two = LocalKeyStore(tmp_path), LocalKeyStore(tmp_path)
    x = one.tenant_secret("t1", "p")
    y = two.tenant_secret("t2", "p")
    data = json.loads((tmp_path / "keystore.json").read_text())
    assert data["tenant_secrets"]["p:t1"] == x.hex() and data["tenant_secrets"]["p:t2"] == y.hex()


def test_corrupt_keystore_is_an_error_not_a_new_key(tmp_path):
    (tmp_path / "keystore.json").write_text("{oops")
    with pytest.raises(KeyStoreError, match="unreadable"):
        LocalKeyStore(tmp_path).tenant_secret("t", "p")
    (tmp_path / "keystore.json").write_text('{"version": 99}')
    with pytest.raises(KeyStoreError, match="unknown format"):
        LocalKeyStore(tmp_path).tenant_secret("t", "p")
