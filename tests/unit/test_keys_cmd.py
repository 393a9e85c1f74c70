from __future__ import annotations

import io
import json
import os

from genai_audit.cli.main import main
from genai_audit.keystore import LocalKeyStore
from genai_audit.masterkey import ENV_MASTER_KEY


def test_status_and_rotation(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ENV_MASTER_KEY, raising=False)
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(tmp_path / "keys"))
    assert main(["keys", "status"]) == 2  # no keystore yet: an error, not a new one
    assert "no keystore at" in capsys.readouterr().err
    ks = LocalKeyStore(tmp_path / "keys")
    alice = ks.subject_keys("acme", ["alice", "bob"])["alice"]
    assert main(["keys", "status", "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert (before["tenants"], before["subjects"], before["erased_subjects"]) == (1, 2, 0)
    assert "alice" not in json.dumps(before)
    assert main(["keys", "rotate-master"]) == 0
    assert capsys.readouterr().out.startswith(f"master key rotated: {before['master_key_id']} ->")
    assert LocalKeyStore(tmp_path / "keys").find_subject("acme", "alice") == alice


def test_rotation_with_an_environment_key_reads_the_new_key_from_stdin(tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv(ENV_MASTER_KEY, os.urandom(32).hex())
    monkeypatch.setenv("GENAI_AUDIT_KEYSTORE_DIR", str(tmp_path))
    LocalKeyStore(tmp_path).tenant_secret("acme", "p")
    monkeypatch.setattr("sys.stdin", io.StringIO("not a key!\n"))
    assert main(["keys", "rotate-master"]) == 2
    new = os.urandom(32)
    monkeypatch.setattr("sys.stdin", io.StringIO(new.hex() + "\n"))
    assert main(["keys", "rotate-master"]) == 0
    assert ENV_MASTER_KEY in capsys.readouterr().out
    monkeypatch.setenv(ENV_MASTER_KEY, new.hex())
    assert len(LocalKeyStore(tmp_path).tenant_secret("acme", "p")) == 32
