"""``genai-audit pseudonym``: the user key an auditor filters on, for one user of one tenant."""

from __future__ import annotations

import click

from genai_audit.cli.common import EXIT_PROBLEM, CommandError, open_existing_store, store_options
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore
from genai_audit.processor.pseudonym import pseudonym_of


@click.command("pseudonym")
@click.option("--tenant", required=True, help="Tenant the user belongs to.")
@click.option("--user", "user_id", required=True, help="The user id as the application knows it.")
@store_options
def command(tenant: str, user_id: str, settings: Settings) -> None:
    """Print the pseudonymous user key (gdpr_pseudonymized_user_key) of one user.

    The store never holds user ids, only this random pseudonym, which only the keystore
    links to the user id; auditors filter on it (see docs/auditor-cookbook.md). Needs the
    keystore, so whoever runs it is trusted with that link. Refuses a tenant with no
    records, and exits 1 for a user the tenant never had, or whose data was erased
    (GDPR Art. 17 deletes the link), or whose key has no records.

    \b
    Examples:
      genai-audit pseudonym --tenant acme --user alice@acme.example
      KEY=$(genai-audit pseudonym --tenant acme --user alice) && \\
        genai-audit query --param user_key=$KEY \\
        "SELECT * FROM audit_pii_interactions WHERE user_key = {user_key:String}"
    """
    store = open_existing_store(settings)
    try:
        if not store.scalar("SELECT count() FROM interactions WHERE tenant_id = {t:String}",
                            {"t": tenant}):
            raise CommandError(f"tenant {tenant!r} has no records in this store")
        # Never mint a fresh keystore: its keys would match nothing (an error, exit 2).
        key = pseudonym_of(open_keystore(settings, create=False), tenant, user_id)
        if key is None:
            click.echo(f"genai-audit: tenant {tenant} has no live data subject with this user "
                       "id (never seen, or erased)", err=True)
            click.get_current_context().exit(EXIT_PROBLEM)
        records = store.scalar(
            "SELECT count() FROM interactions WHERE tenant_id = {t:String} "
            "AND gdpr_pseudonymized_user_key = {k:String}", {"t": tenant, "k": key})
    finally:
        store.close()
    click.echo(key)
    if not records:
        click.echo(f"genai-audit: no records for this user in tenant {tenant}", err=True)
        click.get_current_context().exit(EXIT_PROBLEM)
