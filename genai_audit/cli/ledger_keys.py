"""The ledger's keys for CLI commands: the store's signing key, or a public key file."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genai_audit.cli.common import CommandError
from genai_audit.clickhouse.ledger import checkpoint as notes
from genai_audit.config import Settings
from genai_audit.keystore import LocalKeyStore, open_keystore


def store_keys(settings: Settings) -> LocalKeyStore:
    """The store's existing keystore (only ``init`` creates one: a fresh key verifies
    nothing)."""
    keys = open_keystore(settings, create=False)
    if not keys.path.exists():
        raise CommandError(f"no keystore at {keys.path}: point --config or "
                           "GENAI_AUDIT_KEYSTORE_DIR at the store's keystore, or pass --pubkey")
    return keys


def public_key(settings: Settings, pubkey_file: str | None) -> tuple[str, Ed25519PublicKey]:
    """(key name, key) from ``--pubkey FILE`` (PEM or verifier key), else the keystore's."""
    if pubkey_file is None:
        return notes.KEY_NAME, store_keys(settings).signing_key().public_key()
    try:
        return notes.load_public_key(Path(pubkey_file).read_text("utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read public key {pubkey_file}: {exc.strerror}") from None
    except notes.NoteError as exc:
        raise CommandError(f"public key {pubkey_file}: {exc}") from None
