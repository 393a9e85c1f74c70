"""``genai-audit keys``: the keystore's status and master key rotation."""

from __future__ import annotations

import json
import os
import sys

import click

from genai_audit.cli.common import CommandError, store_options
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore
from genai_audit.masterkey import ENV_MASTER_KEY, MasterKeyError, parse_key_text


@click.group("keys")
def command() -> None:
    """The keystore: status, master key rotation. Keys never live in ClickHouse.

    \b
    Examples:
      genai-audit keys status
      genai-audit keys rotate-master
    """


@command.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@store_options
def status(fmt: str, settings: Settings) -> None:
    """Where the keystore is, which master key opens it, how many subjects it holds."""
    info = open_keystore(settings, create=False).status()
    if fmt == "json":
        click.echo(json.dumps(info))
    else:
        click.echo("\n".join(f"{name:<18} {value}" for name, value in info.items()))


@command.command("rotate-master")
@store_options
def rotate_master(settings: Settings) -> None:
    """Re-wrap every key under a new master key (data keys and pseudonyms stay the same).

    With a key file, a new key is generated beside it and replaces it once every key is
    re-wrapped; a rotation cut short completes the next time the keystore is opened.
    Other processes sharing the key file follow by themselves.

    With GENAI_AUDIT_MASTER_KEY, give the new key on stdin (hex or base64, never on the
    command line), then set GENAI_AUDIT_MASTER_KEY to it wherever the keystore is used:
    processes still holding the old key fail closed (content withheld) until restarted.

    \b
    Examples:
      genai-audit keys rotate-master
      openssl rand -base64 32 | tee new.key | genai-audit keys rotate-master
    """
    keys = open_keystore(settings, create=False)
    new_key = None
    if os.environ.get(ENV_MASTER_KEY):
        try:
            new_key = parse_key_text(sys.stdin.readline(), "stdin")
        except MasterKeyError as exc:
            raise CommandError(str(exc)) from exc
    old_id = keys.status()["master_key_id"]
    new_id = keys.rotate_master_key(new_key)
    click.echo(f"master key rotated: {old_id} -> {new_id} ({keys.path})")
    if new_key is not None:
        click.echo(f"now set {ENV_MASTER_KEY} to the new key wherever this keystore is used")
