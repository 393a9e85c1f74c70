"""``genai-audit demo``: stub LLM + instrumented multi-tenant app -> store -> report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from genai_audit.cli.common import CommandError, open_store, store_options
from genai_audit.cli.report_cmd import ledger_check
from genai_audit.clickhouse.dsn import resolve_dsn
from genai_audit.clickhouse.reports import build_report
from genai_audit.clickhouse.reports.render import format_markdown
from genai_audit.clickhouse.retention import report_facts
from genai_audit.config import Settings
from genai_audit.demo.runner import DemoError, run_demo

_SAMPLE_QUERY = "SELECT tenant_id, tool_name, model, total_cost FROM llm_interaction_audit LIMIT 5"


@click.command("demo")
@click.option("--rounds", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="How many times to run the scripted app (11 LLM calls a round).")
@store_options
def command(rounds: int, settings: Settings) -> None:
    """Run the whole product once, locally, with nothing to configure.

    Starts an OpenAI-compatible stub LLM on 127.0.0.1, runs a scripted multi-tenant app
    (a health assistant, contract review, an HR helpdesk; prompts with PII and PHI;
    streaming; a provider error; an unknown model; a call with no tenant) through the
    real openai client under `opentelemetry-instrument`, then prints what landed in the
    audit store. Run it again to add more records.

    \b
    Examples:
      genai-audit demo
      genai-audit demo --rounds 20 --dsn ./demo-data
    """
    dsn = resolve_dsn(settings.dsn)
    click.echo(f"genai-audit demo: store {dsn}", err=True)
    with click.progressbar(length=rounds * 11, label="LLM calls", file=click.get_text_stream(
            "stderr")) as bar:
        seen = [0]

        def progress(done: int, total: int) -> None:
            bar.update(done - seen[0])
            seen[0] = done

        try:
            run = run_demo(dsn, settings.database, rounds, progress)
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
    store = open_store(settings)
    now = datetime.now(UTC)
    report = build_report(store, tenant=None, start=now - timedelta(days=1),
                          end=now + timedelta(minutes=1), max_rows=50, retention=report_facts,
                          verifier=ledger_check(settings))  # the integrity it reports, checked
    click.echo(format_markdown(report))
    next_steps = [f"genai-audit report --dsn {dsn} --format html --out report.html",
                  f"genai-audit query --dsn {dsn} '{_SAMPLE_QUERY}'"]
    click.echo(f"\n{run.calls} LLM calls audited ({run.expected_errors} failed at the provider, "
               "recorded with their status). Next:\n  " + "\n  ".join(next_steps))
