from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

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
        [(wrapped, lookup, mac)] = db.execute(
            "SELECT wrapped, lookup, mac FROM subjects WHERE pseudonym = ?",
            (alice.pseudonym,)).fetchall()
    before = _dir_bytes(keystore.directory)
    for trace in (wrapped, alice.pseudonym.encode(), lookup.encode(), mac):
        assert trace in before  # the scan can see them
    assert keystore.destroy_subject("acme", "alice", MARKER) is True
    after = _dir_bytes(keystore.directory)
    # Nothing of the subject stays, not even its lookup HMAC (a guessed user id would
    # match it: docs/compliance.md "What erasure leaves").
    for secret in (wrapped, alice.dek, alice.pseudonym.encode(), lookup.encode(), mac):
        assert secret not in after
    assert not list(keystore.directory.glob("*-journal")) and not list(
        keystore.directory.glob("*.tmp"))
    assert keystore.key_for_pseudonym("acme", alice.pseudonym) is None  # no stale cache
    assert keystore.find_subject("acme", "alice") is None
    assert keystore.status()["erased_subjects"] == 1  # when, not who
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


# -- issue 16.4: every row that maps a subject to key material is authenticated -------------

def _sql(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Edit the keystore file the way anyone with file access can: no master key needed."""
    with sqlite3.connect(path) as db:
        for statement, params in statements:
            db.execute(statement, params)


def _swap_lookups(path: Path, a: str, b: str) -> dict[str, str]:
    """Swap the lookups of the subjects with pseudonyms ``a`` and ``b``; their old lookups."""
    with sqlite3.connect(path) as db:
        lookups = dict(db.execute("SELECT pseudonym, lookup FROM subjects").fetchall())
    _sql(path, ("UPDATE subjects SET lookup = 'swap' WHERE pseudonym = ?", (a,)),
         ("UPDATE subjects SET lookup = ? WHERE pseudonym = ?", (lookups[a], b)),
         ("UPDATE subjects SET lookup = ? WHERE pseudonym = ?", (lookups[b], a)))
    return lookups


def test_swapped_lookups_are_an_integrity_error_never_a_wrong_key(keystore):
    keys = keystore.subject_keys("acme", ["user-0", "user-1"])
    zero, one = keys["user-0"].pseudonym, keys["user-1"].pseudonym
    lookups = _swap_lookups(keystore.path, zero, one)
    fresh = LocalKeyStore(keystore.directory)  # any process: the CLI's erase, the pipeline
    for use in (lambda: fresh.find_subject("acme", "user-0"),
                lambda: fresh.subject_keys("acme", ["user-1"]),
                lambda: fresh.key_for_pseudonym("acme", one),
                lambda: fresh.destroy_subject("acme", "user-0", MARKER)):
        with pytest.raises(KeyStoreError, match="user mapping .* swapped") as info:
            use()  # the old keystore returned user-1's key here, and erased it for user-0
        assert type(info.value).__name__ == "KeyStoreIntegrityError"
        message = str(info.value)
        assert "acme" in message and not any(secret in message for secret in (
            zero, one, lookups[zero], lookups[one], "user-0", "user-1"))
    with sqlite3.connect(keystore.path) as db:  # the refused erasure destroyed nothing
        assert db.execute("SELECT count(*) FROM subjects WHERE lookup != '*'").fetchone() == (2,)
    _swap_lookups(keystore.path, zero, one)  # put back: the same rows are fine again
    assert LocalKeyStore(keystore.directory).find_subject("acme", "user-0") == keys["user-0"]


@pytest.mark.parametrize("edit, message", [
    ("UPDATE subjects SET erased_before = NULL WHERE pseudonym = :p", "erasure time was changed"),
    ("UPDATE subjects SET created_at = '2020-01-01T00:00:00+00:00' WHERE pseudonym = :p",
     "creation or erasure time"),
    ("UPDATE subjects SET mac = NULL WHERE pseudonym = :p", "has no MAC"),
    ("UPDATE subjects SET tenant = 'globex' WHERE pseudonym = :p", "does not belong"),
    # the other subject's wrapped key and key id, moved in: the AEAD binds the pseudonym
    ("UPDATE subjects SET (wrapped, key_id) = (SELECT wrapped, key_id FROM subjects"
     " WHERE pseudonym = :q) WHERE pseudonym = :p", "does not belong to its pseudonym"),
    ("DELETE FROM secrets WHERE name = 'integrity:rows'", "MAC key is missing"),
    # secrets are bound to their name: another secret's wrapped value does not fit
    ("UPDATE secrets SET wrapped = (SELECT wrapped FROM secrets WHERE name ="
     " 'subject-index:acme') WHERE name = 'integrity:rows'", "MAC key does not open"),
    ("UPDATE secrets SET wrapped = (SELECT wrapped FROM secrets WHERE name ="
     " 'integrity:rows') WHERE name = 'subject-index:acme'",
     "secret 'subject-index:acme' does not open .* moved from another row"),
    ("DELETE FROM secrets WHERE name = 'subject-index:acme'", "index secret is missing"),
    ("DELETE FROM meta WHERE name = 'kek_check'", "no master key check value"),
    ("UPDATE erasure_times SET erased_at = '2020-01-01T00:00:00+00:00'", "erasure time of"),
])
def test_any_edit_of_a_keystore_row_is_detected(tmp_path, edit, message):
    ks = LocalKeyStore(tmp_path)
    ks.subject_keys("acme", ["gone"])
    ks.destroy_subject("acme", "gone", MARKER)  # an erasure time, and erased_before below
    keys = ks.subject_keys("acme", ["alice", "bob"])
    alice, bob = keys["alice"], keys["bob"]
    assert alice.erased_before is not None
    with sqlite3.connect(ks.path) as db:
        db.execute(edit, {"p": alice.pseudonym, "q": bob.pseudonym})
    fresh = LocalKeyStore(tmp_path)
    with pytest.raises(KeyStoreError, match=message) as info:
        if "tenant" in edit:  # moved to another tenant: found there by its pseudonym
            fresh.key_for_pseudonym("globex", alice.pseudonym)
        fresh.find_subject("acme", "alice")
        fresh.subject_keys("acme", ["carol"])  # a new subject reads the erasure times
    assert type(info.value).__name__ == "KeyStoreIntegrityError"


def _v2_copy(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A keystore written by the previous release (format 2), copied from tests/data."""
    source = Path(__file__).parent.parent / "data" / "keystore-v2"
    target = tmp_path / "v2"
    target.mkdir(mode=0o700)
    for name in ("keystore.db", "master.key"):
        (target / name).write_bytes((source / name).read_bytes())
        (target / name).chmod(0o600)
    return target, json.loads((source / "expected.json").read_text())


def test_a_format_2_keystore_is_upgraded_on_first_open_and_keeps_its_keys(tmp_path):
    from genai_audit.keystore import KeyStoreIntegrityError

    directory, expected = _v2_copy(tmp_path)
    assert all(lookup.encode() in _dir_bytes(directory)  # the old erasure markers
               for lookup in expected["erased_lookups"].values())
    ks = LocalKeyStore(directory)
    for user in ("alice", "bob", "dave"):
        key = ks.find_subject("acme", user)
        assert key is not None and (key.pseudonym, key.key_id, key.dek.hex()) == (
            expected[user]["pseudonym"], expected[user]["key_id"], expected[user]["dek"])
    assert ks.find_subject("acme", "carol") is None
    # dave came back after his erasure: his new key still withholds what started before it
    assert ks.find_subject("acme", "dave").erased_before == _utc("2026-01-03T00:00:00+00:00")
    files = _dir_bytes(directory)  # carol's erasure marker (her lookup) is gone for good
    assert expected["erased_lookups"]["carol"].encode() not in files
    with sqlite3.connect(directory / "keystore.db") as db:
        assert db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone() == ("3",)
        assert db.execute("SELECT count(*) FROM subjects WHERE mac IS NULL").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM erasure_times").fetchone() == (2,)
    ks.close()
    _swap_lookups(directory / "keystore.db", expected["alice"]["pseudonym"],
                  expected["bob"]["pseudonym"])
    with pytest.raises(KeyStoreIntegrityError):  # upgraded rows are authenticated too
        LocalKeyStore(directory).find_subject("acme", "alice")


def test_a_format_3_keystore_cannot_be_dressed_up_as_format_2(tmp_path):
    """Marking the file as the old format (whose rows had no MACs) must not get tampered
    rows authenticated by the upgrade: the check value, which only the master key makes,
    says format 3."""
    ks = LocalKeyStore(tmp_path)
    keys = ks.subject_keys("acme", ["alice", "bob"])
    ks.close()
    _swap_lookups(ks.path, keys["alice"].pseudonym, keys["bob"].pseudonym)
    _sql(ks.path, ("UPDATE subjects SET mac = NULL", ()),
         ("UPDATE meta SET value = '2' WHERE name = 'version'", ()))
    with pytest.raises(KeyStoreError, match="has no MAC"):
        LocalKeyStore(tmp_path).find_subject("acme", "alice")


def _utc(text: str) -> Any:
    from datetime import datetime
    return datetime.fromisoformat(text)


# -- issue 17: the KMS/Vault seam is a setting --------------------------------------------

_WRAPPER_MODULE = '''
import hashlib, hmac, os
from genai_audit.masterkey import MasterKeyError

CALLS = []

class ToyKms:
    """Stands in for a KMS client: XOR with a keyed stream, MAC over nonce, data and AAD."""

    def __init__(self, settings):
        self.secret = hashlib.sha256(settings.keystore_dir.encode()).digest()
        self.key_id = "toy-kms-1"

    def _stream(self, nonce, n):
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.secret + nonce + len(out).to_bytes(4, "big")).digest()
        return out[:n]

    def wrap(self, plaintext, aad):
        CALLS.append("wrap")
        nonce = os.urandom(16)
        body = bytes(a ^ b for a, b in zip(plaintext, self._stream(nonce, len(plaintext))))
        return nonce + body + hmac.digest(self.secret, nonce + body + aad, "sha256")

    def unwrap(self, blob, aad):
        CALLS.append("unwrap")
        nonce, body, tag = blob[:16], blob[16:-32], blob[-32:]
        if not hmac.compare_digest(tag, hmac.digest(self.secret, nonce + body + aad, "sha256")):
            raise MasterKeyError("toy kms: does not open")
        return bytes(a ^ b for a, b in zip(body, self._stream(nonce, len(body))))
'''


def test_the_key_wrapper_setting_plugs_a_kms_into_every_entry_point(tmp_path, monkeypatch):
    import importlib

    from genai_audit.config import Settings
    from genai_audit.keystore import open_keystore

    (tmp_path / "toy_kms_plugin.py").write_text(_WRAPPER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "gw.toml").write_text('key_wrapper = "no_such_module:Nope"\n')
    env = {"GENAI_AUDIT_KEY_WRAPPER": "toy_kms_plugin:ToyKms",
           "GENAI_AUDIT_KEYSTORE_DIR": str(tmp_path / "keys")}
    settings = Settings.load(env=env, config_file=tmp_path / "gw.toml")  # env beats the file
    assert settings.describe()["key_wrapper"] == ("toy_kms_plugin:ToyKms",
                                                  "env GENAI_AUDIT_KEY_WRAPPER")
    keys = open_keystore(settings)
    alice = keys.subject_keys("acme", ["alice"])["alice"]
    assert keys.status()["master_key_id"] == "toy-kms-1"
    assert not (tmp_path / "keys" / "master.key").exists()  # no local master key at all
    plugin = importlib.import_module("toy_kms_plugin")
    assert "wrap" in plugin.CALLS
    assert open_keystore(settings).find_subject("acme", "alice") == alice  # a second process
    with pytest.raises(KeyStoreError, match="no master key"):  # never a new local key
        LocalKeyStore(tmp_path / "keys").find_subject("acme", "alice")
    with pytest.raises(KeyStoreError, match="external service"):
        open_keystore(settings).rotate_master_key()
    file_only = Settings.load(env={}, config_file=tmp_path / "gw.toml")
    with pytest.raises(KeyStoreError, match=r"key_wrapper \(from file .*gw.toml\): cannot "
                                            r"import module 'no_such_module'"):
        open_keystore(file_only)
    flag = Settings.load({"key_wrapper": "toy_kms_plugin:Missing"}, env=env)  # flag beats env
    with pytest.raises(KeyStoreError, match="from argument.*no attribute 'Missing'"):
        open_keystore(flag)
    with pytest.raises(KeyStoreError, match="no entry point 'nothing-here'"):
        open_keystore(Settings.load({"key_wrapper": "nothing-here"}, env=env))
    # the same wrapper as an installed plug-in declares it: an entry point, found by name
    dist = tmp_path / "toy_kms-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-kms\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[genai_audit.key_wrappers]\n"
                                           "toy-kms = toy_kms_plugin:ToyKms\n")
    by_name = Settings.load(env={**env, "GENAI_AUDIT_KEY_WRAPPER": "toy-kms"})
    assert open_keystore(by_name).find_subject("acme", "alice") == alice


@pytest.mark.parametrize("bad", ["a b", "mod:", ":attr", "mod:attr:x", "1mod:X"])
def test_a_malformed_key_wrapper_setting_is_refused(bad):
    from genai_audit.config import Settings, SettingsError

    with pytest.raises(SettingsError, match="key_wrapper: expected an entry point name"):
        Settings.load(env={"GENAI_AUDIT_KEY_WRAPPER": bad})
