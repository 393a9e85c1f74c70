"""Signed checkpoints in the C2SP formats: tlog-checkpoint (the text) in a signed note.

A checkpoint note, byte for byte::

    <origin>\\n<tree size, decimal>\\n<base64 root hash>\\n[<extension line>\\n ...]
    \\n
    \\u2014 <key name> base64(key ID (4 bytes) || Ed25519 signature over the text)\\n

``key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]`` (signed-note,
Ed25519 type 0x01). Public keys are exported as a PEM file and as the signed-note verifier
key string ``<name>+<hex key ID>+base64(0x01 || public key)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_NAME = "genai-audit/ledger"
ED25519_TYPE = b"\x01"
_SIG_PREFIX = "\u2014 "
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")


class NoteError(ValueError):
    """A note or checkpoint that is malformed, or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()  # tlog-checkpoint extension lines (signed, opaque here)

    def text(self) -> str:
        if not self.origin or "\n" in self.origin or any(ch.isspace() for ch in self.origin):
            raise NoteError(f"invalid checkpoint origin {self.origin!r}")
        if any(not line or "\n" in line for line in self.extensions):
            raise NoteError("invalid checkpoint extension line")
        return "".join(f"{line}\n" for line in (
            self.origin, str(self.size), base64.b64encode(self.root).decode(),
            *self.extensions))


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    material = name.encode() + b"\n" + ED25519_TYPE + raw_public_key(public)
    return hashlib.sha256(material).digest()[:4]


def verifier_key(public: Ed25519PublicKey, name: str = KEY_NAME) -> str:
    """The signed-note verifier key string (as used by Go's golang.org/x/mod/sumdb/note)."""
    payload = base64.b64encode(ED25519_TYPE + raw_public_key(public)).decode()
    return f"{name}+{key_id(name, public).hex()}+{payload}"


def public_key_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(text: str) -> tuple[str, Ed25519PublicKey]:
    """A PEM public key or a verifier key string -> (key name, key)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise NoteError(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise NoteError("the PEM key is not an Ed25519 public key")
        return KEY_NAME, key
    parts = text.split("+", 2)  # name and key ID hold no "+"; base64 may
    if len(parts) != 3:
        raise NoteError("expected a PEM public key or a '<name>+<id>+<key>' verifier key")
    name, kid, payload = parts
    try:
        raw = base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise NoteError("verifier key: invalid base64") from None
    if len(raw) != 33 or raw[:1] != ED25519_TYPE:
        raise NoteError("verifier key: not an Ed25519 key")
    key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_id(name, key).hex() != kid.lower():
        raise NoteError("verifier key: key ID does not match name and key")
    return name, key


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey, name: str = KEY_NAME) -> str:
    text = checkpoint.text()
    signature = key_id(name, key.public_key()) + key.sign(text.encode())
    return f"{text}\n{_SIG_PREFIX}{name} {base64.b64encode(signature).decode()}\n"


def open_note(note: str, public: Ed25519PublicKey, name: str = KEY_NAME) -> Checkpoint:
    """Verify ``note`` was signed by ``public`` under ``name``; return the checkpoint in it.

    Signatures from other keys are ignored (signed-note rules); at least one signature from
    this key must be present and every one of them must verify.
    """
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise NoteError("note contains control characters")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text, sig_lines = note[: split + 1], note[split + 2:].splitlines()
    wanted = key_id(name, public)
    found = 0
    for line in sig_lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed signature line")
        key_name, _, b64 = line[len(_SIG_PREFIX):].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("signature is not valid base64") from None
        if len(raw) < 5:
            raise NoteError("signature too short")
        if key_name != name or raw[:4] != wanted:
            continue  # an unknown key: ignored
        try:
            public.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError("signature does not verify") from None
        found += 1
    if not found:
        raise NoteError(f"no signature by {name} (key ID {wanted.hex()})")
    return parse_checkpoint(text)


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise NoteError("checkpoint text needs origin, size and root lines")
    origin, size, root_b64 = lines[0], lines[1], lines[2]
    if not _SIZE.match(size):
        raise NoteError(f"invalid tree size {size!r}")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except binascii.Error:
        raise NoteError("root hash is not valid base64") from None
    if len(root) != 32:
        raise NoteError("root hash is not 32 bytes")
    return Checkpoint(origin, int(size), root, tuple(lines[3:-1]))
