"""``genai-audit pseudonym``: the user key an auditor filters on, for one user of one tenant."""

from __future__ import annotations

import click

from genai_audit.cli.common import EXIT_PROBLEM, CommandError, open_store, store_options
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import default_keystore_dir
from genai_audit.keystore import LocalKeyStore
from genai_audit.processor.pseudonym import PURPOSE, pseudonymize


@click.command("pseudonym")
@click.option("--tenant", required=True, help="Tenant the user belongs to.")
@click.option("--user", "user_id", required=True, help="The user id as the application knows it.")
@store_options
def command(tenant: str, user_id: str, settings: Settings) -> None:
    """Print the pseudonymous user key (gdpr_pseudonymized_user_key) of one user.

    The store never holds user ids, only this keyed HMAC; auditors filter on it (see
    docs/auditor-cookbook.md). Needs the keystore, so whoever runs it is trusted with
    the tenant's pseudonym secret. Refuses a tenant with no records (so a typo does not
    mint a secret) and exits 1 when the key has no records.

    \b
    Examples:
      genai-audit pseudonym --tenant acme --user alice@acme.example
      KEY=$(genai-audit pseudonym --tenant acme --user alice) && \\
        genai-audit query --param user_key=$KEY \\
        "SELECT * FROM audit_pii_interactions WHERE user_key = {user_key:String}"
    """
    store = open_store(settings)
    try:
        if not store.scalar("SELECT count() FROM interactions WHERE tenant_id = {t:String}",
                            {"t": tenant}):
            raise CommandError(f"tenant {tenant!r} has no records in this store")
        keys = LocalKeyStore(default_keystore_dir(settings))
        if not keys.path.exists():  # never mint a fresh keystore: its keys would match nothing
            raise CommandError(f"no keystore at {keys.path}: point --config or "
                               "GENAI_AUDIT_KEYSTORE_DIR at the store's keystore")
        secret = keys.tenant_secret(tenant, PURPOSE)
        key = pseudonymize(user_id, secret)
        records = store.scalar(
            "SELECT count() FROM interactions WHERE tenant_id = {t:String} "
            "AND gdpr_pseudonymized_user_key = {k:String}", {"t": tenant, "k": key})
    finally:
        store.close()
    click.echo(key)
    if not records:
        click.echo(f"genai-audit: no records for this user in tenant {tenant}", err=True)
        click.get_current_context().exit(EXIT_PROBLEM)
