"""``genai-audit query``: read-only SQL against the store."""

from __future__ import annotations

import click

from genai_audit.cli.common import EXIT_PROBLEM, CommandError, open_existing_store, store_options
from genai_audit.cli.formats import FORMATTERS
from genai_audit.clickhouse.archive_location import location_from_settings
from genai_audit.clickhouse.archive_manifest import ManifestError
from genai_audit.clickhouse.archive_verify import attach_archive
from genai_audit.clickhouse.errors import QueryRejected
from genai_audit.clickhouse.readonly import run_read_only
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.keystore import open_keystore
from genai_audit.processor.pseudonym import pseudonym_of


@click.command("query")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATTERS)), default="table",
              show_default=True, help="Output format.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Bind a query parameter used as {NAME:Type} in the SQL (repeatable).")
@click.option("--user", "users", multiple=True, metavar="NAME=TENANT:USER_ID",
              help="Bind {NAME:String} to the pseudonym of that tenant's user id (resolved "
                   "through the keystore; the plain id never reaches the store). Repeatable.")
@click.option("--include-archive", "archive_url", metavar="URL",
              help="Also expose the archive at URL (s3://... or file://...) as the table "
                   "archived_interactions (manifest signature checked first).")
@store_options
@click.pass_context
def command(ctx: click.Context, sql: str, fmt: str, params: tuple[str, ...],
            users: tuple[str, ...], archive_url: str | None, settings: Settings) -> None:
    """Run one read-only query (SELECT / WITH, SHOW, DESCRIBE) against the audit store.

    The connection is made read-only (readonly=1) before anything runs; ClickHouse's own
    parser must find exactly one statement, and only that statement, as it parsed it, runs.
    EXISTS and EXPLAIN AST / SYNTAX are reads too. Table functions (file, url, s3,
    remote...), SETTINGS, FORMAT and INTO OUTFILE are refused: a query reads the store's
    tables and nothing else. Tables: interactions and
    the seed-compatible view llm_interaction_audit (see docs/auditor-cookbook.md).

    Stored user ids are pseudonyms (llm_interaction_audit.user_id and
    gdpr_pseudonymized_user_key), so `WHERE user_id = 'abc123'` matches nothing. Ask by
    user id with --user NAME=TENANT:USER_ID and `{NAME:String}` in the SQL: the CLI maps
    the id to its pseudonym through the keystore (exit 1 for a user never seen or erased).

    With --include-archive, archived records are readable as archived_interactions (same
    columns as interactions, read on demand from the Parquet objects the signed manifest
    lists); union it with interactions to query hot and archived records together.

    \b
    Examples:
      genai-audit query "SELECT tool_name, sum(total_cost) FROM interactions GROUP BY tool_name"
      genai-audit query --format json "SELECT count() FROM llm_interaction_audit"
      genai-audit query --param tool=contract_review \
        "SELECT sum(cost) FROM audit_cost_monthly WHERE tool_name = {tool:String}"
      genai-audit query --user u=acme:abc123 \
        "SELECT count() FROM llm_interaction_audit WHERE user_id = {u:String}"
      genai-audit query --include-archive s3://audit-archive/prod \
        "SELECT tenant_id, count() FROM (SELECT tenant_id, id FROM archived_interactions
         UNION DISTINCT SELECT tenant_id, id FROM interactions) GROUP BY tenant_id"
    """
    parameters = parse_params(params)
    for name, (tenant, user_id) in parse_users(users).items():
        key = pseudonym_of(open_keystore(settings, create=False), tenant, user_id)
        if key is None:
            click.echo(f"unknown subject: tenant {tenant} has no live data subject with the "
                       f"user id given for {name} (never seen, or erased)", err=True)
            ctx.exit(EXIT_PROBLEM)
        parameters[name] = key
    store = open_existing_store(settings)
    if archive_url:
        _attach(store, archive_url, settings)
    try:
        result = run_read_only(store, sql, parameters)
    except QueryRejected as exc:
        raise CommandError(f"query rejected: {exc}") from exc
    columns = list(result.column_names)
    click.echo(FORMATTERS[fmt](columns, result.result_rows))


def parse_params(params: tuple[str, ...]) -> dict[str, str]:
    """``("name=value", ...)`` -> dict; values stay strings, ClickHouse converts to the Type."""
    parsed: dict[str, str] = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--param")
        parsed[name] = value
    return parsed


def parse_users(users: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """``("name=tenant:user id", ...)`` -> {name: (tenant, user id)}."""
    parsed: dict[str, tuple[str, str]] = {}
    for item in users:
        name, sep, rest = item.partition("=")
        tenant, colon, user_id = rest.partition(":")
        if not sep or not colon or not name.isidentifier() or not tenant or not user_id:
            raise click.BadParameter(f"expected NAME=TENANT:USER_ID, got {item.split('=')[0]!r}="
                                     "...", param_hint="--user")  # never echo the user id
        parsed[name] = (tenant, user_id)
    return parsed


def _attach(store: Store, url: str, settings: Settings) -> None:
    location = location_from_settings(url, settings)
    public = open_keystore(settings).signing_key().public_key()
    try:
        attach_archive(store, location, public)
    except ManifestError as exc:
        raise CommandError(f"{location.url}: {exc}") from exc
