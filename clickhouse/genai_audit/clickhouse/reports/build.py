"""``build_report``: run every section's queries over one scope and assemble a ``Report``.

Sections run in a fixed order (page one of every format follows it); each is a small
function in its own module, so a feature that lands later (ledger verify, holds and
archives) plugs in through the ``verifier`` / ``retention`` arguments instead of edits here.
``progress`` is called once per finished step, for a progress bar.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata

from genai_audit.clickhouse.reports import (
    cost,
    facts,
    failures,
    gdpr,
    hipaa,
    integrity,
    pii,
    soc2,
)
from genai_audit.clickhouse.reports import retention as retention_section
from genai_audit.clickhouse.reports.integrity import Verifier
from genai_audit.clickhouse.reports.model import Period, Provenance, Report, Section
from genai_audit.clickhouse.reports.retention import RetentionProvider
from genai_audit.clickhouse.reports.scope import Scope, has_table
from genai_audit.clickhouse.store import Store

DEFAULT_MAX_ROWS = 10_000

# Step names, in order; a progress bar's length is len(STEPS).
STEPS = ("totals", "SOC2 activity", "PII controls", "cost attribution", "GDPR erasures", "HIPAA",
         "integrity", "retention", "control failures")


def build_report(store: Store, *, tenant: str | None, start: datetime, end: datetime,
                 max_rows: int = DEFAULT_MAX_ROWS, verifier: Verifier | None = None,
                 retention: RetentionProvider | None = None,
                 progress: Callable[[str], None] | None = None,
                 now: datetime | None = None) -> Report:
    """The auditor's report for ``tenant`` (None: all tenants) over ``[start, end)`` UTC."""
    generated_at = now or datetime.now(UTC)
    scope = Scope(tenant, Period(_utc(start), _utc(end)))
    done = progress or (lambda _step: None)

    def step(name: str, section: Section) -> Section:
        done(name)
        return section

    known = facts.load(store, scope)
    done(STEPS[0])
    sections = [
        step(STEPS[1], soc2.build(store, scope, known, max_rows=max_rows)),
        step(STEPS[2], pii.build(store, scope, known)),
        step(STEPS[3], cost.build(known)),
        step(STEPS[4], gdpr.build(store, scope)),
        step(STEPS[5], hipaa.build(store, scope, known)),
    ]
    checked = integrity.build(store, scope, known, verifier)
    sections.append(step(STEPS[6], checked.section))
    sections.append(step(STEPS[7], retention_section.build(store, scope, generated_at,
                                                           retention)))
    sections.append(step(STEPS[8], failures.build(store, scope, known)))
    provenance = Provenance(
        store=store.display_dsn, database=store.database, tenant=tenant, period=scope.period,
        generated_at=generated_at, schema_version=schema_version(store),
        tool_version=_tool_version(), checkpoint=checked.checkpoint,
        verify_result=checked.verify_result)
    who = f"tenant {tenant}" if tenant is not None else "all tenants"
    return Report(title=f"LLM audit report: {who}", provenance=provenance, sections=sections)


def schema_version(store: Store) -> int:
    """Highest applied migration, read without creating anything (works for read-only users)."""
    if not has_table(store, "schema_migrations"):
        return 0
    return int(store.scalar("SELECT max(version) FROM schema_migrations") or 0)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tool_version() -> str:
    try:
        return metadata.version("genai-audit")
    except metadata.PackageNotFoundError:
        return "unknown"
