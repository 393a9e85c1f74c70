from __future__ import annotations

import base64
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genai_audit.keystore import ErasureMarker, KeyStoreError, LocalKeyStore
from genai_audit.masterkey import ENV_MASTER_KEY, MasterKeyError, load_master_key

MARKER = ErasureMarker("e-1", "DSR-1", "2026-01-01T00:00:00+00:00")


def _dir_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def test_secrets_persist_per_tenant_and_purpose(tmp_path):
    ks = LocalKeyStore(tmp_path / "k")
    a = ks.tenant_secret("acme", "pseudonym")
    assert len(a) == 32
    assert a != ks.tenant_secret("acme", "commitment") != ks.tenant_secret("globex", "pseudonym")
    again = LocalKeyStore(tmp_path / "k")  # a second process sees the same secret
    assert again.tenant_secret("acme", "pseudonym") == a
    assert again.public_key_pem() == ks.public_key_pem()
    for name in ("keystore.db", "master.key"):
        assert stat.S_IMODE((tmp_path / "k" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    assert a not in _dir_bytes(tmp_path / "k")  # stored wrapped, never in clear


def test_subjects_get_random_stable_pseudonyms_per_tenant(keystore):
    first = keystore.subject_keys("acme", ["alice", "bob"])
    again = keystore.subject_keys("acme", ["alice"])
    other = keystore.subject_keys("globex", ["alice"])
    assert again["alice"] == first["alice"]
    assert len({first["alice"].pseudonym, first["bob"].pseudonym, other["alice"].pseudonym}) == 3
    assert len(first["alice"].pseudonym) == 32 and len(first["alice"].dek) == 32
    assert keystore.key_for_pseudonym("acme", first["bob"].pseudonym) == first["bob"]
    assert keystore.key_for_pseudonym("acme", "f" * 32) is None
    assert keystore.key_for_pseudonym("acme", "").pseudonym == ""  # the no-subject key
    assert keystore.find_subject("acme", "carol") is None  # lookups never create
    assert first["alice"].derive("commitment") != first["alice"].dek


def test_destroyed_subject_leaves_no_trace_in_the_keystore_files(keystore):
    alice = keystore.subject_keys("acme", ["alice", "bob"])["alice"]
    with sqlite3.connect(keystore.path) as db:
        [(wrapped,)] = db.execute("SELECT wrapped FROM subjects WHERE pseudonym = ?",
                                  (alice.pseudonym,)).fetchall()
    before = _dir_bytes(keystore.directory)
    assert wrapped in before and alice.pseudonym.encode() in before  # the scan can see them
    assert keystore.destroy_subject("acme", "alice", MARKER) is True
    after = _dir_bytes(keystore.directory)
    for secret in (wrapped, alice.dek, alice.pseudonym.encode()):
        assert secret not in after
    assert not list(keystore.directory.glob("*-journal")) and not list(
        keystore.directory.glob("*.tmp"))
    assert keystore.key_for_pseudonym("acme", alice.pseudonym) is None  # no stale cache
    assert keystore.find_subject("acme", "alice") is None
    assert keystore.erasure_marker("acme", "alice") == MARKER
    assert keystore.find_subject("acme", "bob") is not None  # others untouched
    assert keystore.destroy_subject("acme", "alice", MARKER) is False
    fresh = LocalKeyStore(keystore.directory)
    assert fresh.key_for_pseudonym("acme", alice.pseudonym) is None


def test_a_returning_user_gets_a_new_subject(keystore):
    old = keystore.subject_keys("acme", ["alice"])["alice"]
    keystore.destroy_subject("acme", "alice", MARKER)
    new = keystore.subject_keys("acme", ["alice"])["alice"]
    assert new.pseudonym != old.pseudonym and new.dek != old.dek


_CHILD = textwrap.dedent("""
    import sys
    from genai_audit.keystore import ErasureMarker, LocalKeyStore
    ks = LocalKeyStore(sys.argv[1])
    if sys.argv[2] == "erase":
        assert ks.destroy_subject("acme", "alice", ErasureMarker("e", "r", "2026-01-01T00:00:00"))
    else:
        users = [f"user-{i}" for i in range(int(sys.argv[3]))]
        for start in range(0, len(users), 7):
            keys = ks.subject_keys("acme", users[start:start + 7])
        print(",".join(f"{u}={ks.find_subject('acme', u).pseudonym}" for u in users))
""")


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _CHILD, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_processes_sharing_a_keystore_agree_and_see_erasures(keystore):
    keystore.tenant_secret("acme", "x")  # create the keystore (and master key) once
    children = [_child(str(keystore.directory), "create", "40") for _ in range(4)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    assert len(set(outputs)) == 1 and outputs[0].count("=") == 40  # one pseudonym per user
    cached = keystore.subject_keys("acme", ["alice"])["alice"]
    assert keystore.key_for_pseudonym("acme", cached.pseudonym) == cached
    eraser = _child(str(keystore.directory), "erase")
    assert eraser.wait(timeout=120) == 0, eraser.stderr.read() if eraser.stderr else ""
    # Another process erased alice: this process's cached key must not outlive that.
    assert keystore.key_for_pseudonym("acme", cached.pseudonym) is None
    with sqlite3.connect(keystore.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_wrong_master_key_is_an_error_not_a_new_keystore(tmp_path, monkeypatch):
    ks = LocalKeyStore(tmp_path)
    secret = ks.tenant_secret("t", "p")
    (tmp_path / "master.key").unlink()
    with pytest.raises(KeyStoreError, match="no master key"):
        LocalKeyStore(tmp_path).tenant_secret("t", "p")  # not silently regenerated
    monkeypatch.setenv(ENV_MASTER_KEY, base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyStoreError, match="does not open"):
        LocalKeyStore(tmp_path).tenant_secret("t", "p")
    assert secret not in _dir_bytes(tmp_path)


def test_master_key_from_environment(tmp_path, monkeypatch):
    key = os.urandom(32)
    monkeypatch.setenv(ENV_MASTER_KEY, key.hex())
    a = LocalKeyStore(tmp_path).subject_keys("t", ["u"])["u"]
    assert not (tmp_path / "master.key").exists()  # nothing written beside the keystore
    monkeypatch.setenv(ENV_MASTER_KEY, base64.urlsafe_b64encode(key).decode().rstrip("="))
    assert LocalKeyStore(tmp_path).find_subject("t", "u") == a


@pytest.mark.parametrize("text, message", [("not a key!", "not hex or base64"),
                                           (base64.b64encode(b"x" * 16).decode(), "16")])
def test_malformed_master_keys_are_refused(tmp_path, text, message):
    with pytest.raises(MasterKeyError, match=message):
        load_master_key(tmp_path / "none", create=False, env={ENV_MASTER_KEY: text})


def test_group_readable_key_file_is_refused(tmp_path):
    load_master_key(tmp_path / "master.key", create=True, env={})
    (tmp_path / "master.key").chmod(0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_key(tmp_path / "master.key", create=False, env={})


def test_corrupt_keystore_is_an_error(tmp_path):
    (tmp_path / "keystore.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(KeyStoreError):
        LocalKeyStore(tmp_path).tenant_secret("t", "p")


def test_settings_place_the_keystore_and_its_master_key_apart(tmp_path):
    from genai_audit.config import Settings
    from genai_audit.keystore import open_keystore

    settings = Settings.load({"keystore_dir": str(tmp_path / "keys"),
                              "master_key_file": str(tmp_path / "secrets" / "kek")}, env={})
    keys = open_keystore(settings)
    keys.ensure_master_key()
    assert keys.path == tmp_path / "keys" / "keystore.db"
    assert stat.S_IMODE((tmp_path / "secrets" / "kek").stat().st_mode) == 0o600
    assert not (tmp_path / "keys" / "master.key").exists()


def test_master_key_rotation_rewraps_everything_and_keeps_data_keys(tmp_path):
    ks = LocalKeyStore(tmp_path)
    other = LocalKeyStore(tmp_path)  # another process's view, opened before the rotation
    alice = ks.subject_keys("acme", ["alice"])["alice"]
    secret = other.tenant_secret("acme", "p")
    old_key_file = (tmp_path / "master.key").read_bytes()
    with sqlite3.connect(ks.path) as db:
        old_blobs = [bytes(r[0]) for r in db.execute("SELECT wrapped FROM subjects UNION ALL "
                                                     "SELECT wrapped FROM secrets")]
    new_id = ks.rotate_master_key()
    assert new_id != "" and (tmp_path / "master.key").read_bytes() != old_key_file
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600
    assert not (tmp_path / "master.key.new").exists()
    files = _dir_bytes(tmp_path)
    assert not any(blob in files for blob in old_blobs)
    fresh = LocalKeyStore(tmp_path)
    assert fresh.find_subject("acme", "alice") == alice and fresh.tenant_secret("acme", "p") == secret
    bob = other.subject_keys("acme", ["bob"])["bob"]  # follows the rotation by itself
    assert LocalKeyStore(tmp_path).find_subject("acme", "bob") == bob
    (tmp_path / "old.key").write_bytes(old_key_file)
    (tmp_path / "old.key").chmod(0o600)
    with pytest.raises(KeyStoreError, match="does not open"):
        LocalKeyStore(tmp_path, master_key_file=tmp_path / "old.key").find_subject("acme", "bob")


def test_a_rotation_interrupted_after_its_commit_completes_on_next_open(tmp_path, monkeypatch):
    ks = LocalKeyStore(tmp_path)
    alice = ks.subject_keys("acme", ["alice"])["alice"]

    def crash(*args):
        raise OSError("power cut")

    monkeypatch.setattr("genai_audit.keystore.os.replace", crash)
    with pytest.raises(OSError):
        ks.rotate_master_key()
    monkeypatch.undo()
    assert (tmp_path / "master.key.new").exists()
    assert LocalKeyStore(tmp_path).find_subject("acme", "alice") == alice  # promoted
    assert not (tmp_path / "master.key.new").exists()


def test_rotation_with_the_key_in_the_environment(tmp_path, monkeypatch):
    old, new = os.urandom(32), os.urandom(32)
    monkeypatch.setenv(ENV_MASTER_KEY, old.hex())
    ks = LocalKeyStore(tmp_path)
    alice = ks.subject_keys("acme", ["alice"])["alice"]
    with pytest.raises(KeyStoreError, match="give the new key"):
        ks.rotate_master_key()
    ks.rotate_master_key(new)
    with pytest.raises(KeyStoreError):
        LocalKeyStore(tmp_path).find_subject("acme", "alice")  # still the old key set
    monkeypatch.setenv(ENV_MASTER_KEY, new.hex())
    assert LocalKeyStore(tmp_path).find_subject("acme", "alice") == alice
