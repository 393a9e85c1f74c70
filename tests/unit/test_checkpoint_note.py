"""C2SP signed-note / tlog-checkpoint format: exact bytes, key IDs, signature rules."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genai_audit.clickhouse.ledger import checkpoint as notes

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ROOT = hashlib.sha256(b"root").digest()


def test_note_layout_is_byte_exact() -> None:
    note = notes.sign(notes.Checkpoint("example.com/log", 20852163, ROOT), KEY)
    text, _, sig_line = note.partition("\n\n")
    assert text + "\n" == f"example.com/log\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert sig_line.startswith("\u2014 genai-audit/ledger ") and sig_line.endswith("\n")
    raw = base64.b64decode(sig_line.split(" ")[2])
    pub = notes.raw_public_key(KEY.public_key())
    assert raw[:4] == hashlib.sha256(b"genai-audit/ledger\n\x01" + pub).digest()[:4]
    KEY.public_key().verify(raw[4:], (text + "\n").encode())  # signs exactly the text
    assert notes.open_note(note, KEY.public_key()) == notes.Checkpoint(
        "example.com/log", 20852163, ROOT)


def test_verifier_key_round_trip_and_pem() -> None:
    vkey = notes.verifier_key(KEY.public_key())
    name, key = notes.load_public_key(vkey)
    assert name == "genai-audit/ledger"
    assert notes.raw_public_key(key) == notes.raw_public_key(KEY.public_key())
    _, from_pem = notes.load_public_key(notes.public_key_pem(KEY.public_key()))
    assert notes.raw_public_key(from_pem) == notes.raw_public_key(KEY.public_key())
    broken = vkey.split("+", 2)
    with pytest.raises(notes.NoteError, match="key ID"):
        notes.load_public_key("+".join([broken[0], "00000000", broken[2]]))


def test_other_keys_signatures_are_ignored_but_one_of_ours_is_required() -> None:
    other = Ed25519PrivateKey.generate()
    cp = notes.Checkpoint("o", 1, ROOT)
    ours, theirs = notes.sign(cp, KEY), notes.sign(cp, other, name="witness.example/w")
    both = ours + theirs.partition("\n\n")[2]  # a cosigned note: two signature lines
    assert notes.open_note(both, KEY.public_key()) == cp
    with pytest.raises(notes.NoteError, match="no signature"):
        notes.open_note(theirs, KEY.public_key())


@pytest.mark.parametrize("mutate", [
    lambda n: n.replace("\n1\n", "\n2\n", 1),  # tree size changed
    lambda n: n.replace("o\n", "p\n", 1),  # origin changed
    lambda n: n[:-5] + ("A" if n[-5] != "A" else "B") + n[-4:],  # signature bytes changed
])
def test_altered_notes_are_rejected(mutate) -> None:  # type: ignore[no-untyped-def]
    note = notes.sign(notes.Checkpoint("o", 1, ROOT), KEY)
    with pytest.raises(notes.NoteError):
        notes.open_note(mutate(note), KEY.public_key())


@pytest.mark.parametrize("text", ["o\n1\n", "o\n01\nAAAA\n", "o\n1\nnot base64!\n",
                                  "o\n1\n" + base64.b64encode(b"short").decode() + "\n",
                                  "\n1\n" + base64.b64encode(ROOT).decode() + "\n"])
def test_malformed_checkpoint_text(text: str) -> None:
    with pytest.raises(notes.NoteError):
        notes.parse_checkpoint(text)


def test_origin_must_be_one_line_without_spaces() -> None:
    with pytest.raises(notes.NoteError):
        notes.Checkpoint("evil\n999", 1, ROOT).text()


def test_extension_lines_are_signed_and_read_back() -> None:
    """The ledger's metadata line (C2SP tlog-checkpoint extension line) is part of the
    signed text: editing it breaks the signature."""
    cp = notes.Checkpoint("example.com/log", 7, ROOT, ("genai-audit/meta/v1 3 AAAA",))
    note = notes.sign(cp, KEY)
    assert note.startswith(f"example.com/log\n7\n{base64.b64encode(ROOT).decode()}\n"
                           "genai-audit/meta/v1 3 AAAA\n\n")
    assert notes.open_note(note, KEY.public_key()) == cp
    with pytest.raises(notes.NoteError, match="does not verify"):
        notes.open_note(note.replace(" 3 AAAA", " 2 AAAA"), KEY.public_key())
    with pytest.raises(notes.NoteError, match="extension"):
        notes.Checkpoint("example.com/log", 7, ROOT, ("",)).text()
