"""Integrity: can the auditor trust that these records were not altered?

Two layers. Content commitments (keyed HMACs, ``prompt_hash``/``response_hash``) are on
every record today: a record without one is a finding. The ledger (Merkle tree and signed
checkpoints, ``ledger_checkpoints``) and ``verify`` come from the ledger feature: pass a
``Verifier`` to ``build_report`` and its outcome, with the checkpoint it used, is printed
here and in the provenance block; without one the report says plainly that it was not run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from genai_audit.clickhouse.reports import numbers
from genai_audit.clickhouse.reports.facts import Facts
from genai_audit.clickhouse.reports.model import Figure, Section, Status, Table
from genai_audit.clickhouse.reports.scope import Scope, has_table, missing_columns
from genai_audit.clickhouse.store import Store


@dataclass
class VerifyOutcome:
    """What ``verify`` found over the report's scope."""

    intact: bool
    checkpoint: str  # e.g. "acme tree_size=1234 root=ab12... signed 2026-11-23T10:00Z"
    summary: str  # one line, e.g. "1234 records verified against checkpoint ..."
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (record id, pos, what)


Verifier = Callable[[Store, Scope], VerifyOutcome]

CHECKPOINTS = "ledger_checkpoints"
CHECKPOINT_COLUMNS = {"created_at": "signed at", "origin": "log", "tree_size": "records",
                      "root_hash": "Merkle root"}
# A tenant's report names a checkpoint of that tenant's own logs, never another tenant's;
# never one of a writer's log of logs (source_table 'ledger', no tenant: docs/ledger.md).
LATEST_CHECKPOINT_SQL = """
SELECT origin, tree_size, root_hash, created_at FROM ledger_checkpoints
WHERE created_at < {end:DateTime64(6, 'UTC')} AND source_table != 'ledger' AND {tenant_where}
ORDER BY created_at DESC LIMIT 1
"""

NOT_RUN = "not run: this store has no ledger (ledger_checkpoints)"


@dataclass
class IntegrityResult:
    section: Section
    checkpoint: str
    verify_result: str


def build(store: Store, scope: Scope, facts: Facts,
          verifier: Verifier | None) -> IntegrityResult:
    n, uncommitted = facts.total("interactions"), facts.total("uncommitted")
    section = Section(
        key="integrity", title="Integrity (tamper evidence)", status=Status.OK, summary="",
        figures=[Figure("Records with content commitments",
                        f"{numbers.count(n - uncommitted)} of {numbers.count(n)}",
                        int(n - uncommitted))])
    if uncommitted:
        section.status = Status.ATTENTION
        section.notes.append(f"{numbers.count(uncommitted)} records have no content commitment "
                             "(their commit stage failed and their content was withheld).")
    checkpoint = latest_checkpoint(store, scope)
    if verifier is not None:
        outcome = verifier(store, scope)
        checkpoint, verify_result = outcome.checkpoint, outcome.summary
        section.figures.append(Figure("Ledger verification",
                                      "intact" if outcome.intact else "FAILED"))
        if not outcome.intact:
            section.status = Status.ATTENTION
            section.tables.append(Table("integrity_problems", "Records that failed verification",
                                        ["record_id", "position", "problem"],
                                        list(outcome.problems)))
        section.summary = verify_result
    elif checkpoint is None:
        checkpoint, verify_result = "none", NOT_RUN
        section.status = Status.NOT_AVAILABLE if not uncommitted else Status.ATTENTION
        section.summary = ("Ledger verification not available: this store has no signed "
                           "ledger yet. Each record carries keyed content commitments, but "
                           "without the ledger a deleted or inserted row cannot be proven.")
    else:  # a check not run is never reported as passed
        verify_result = "not run by this report: run `genai-audit verify` with these bounds"
        section.summary = f"Latest signed checkpoint: {checkpoint}. {verify_result}."
        if not uncommitted:
            section.status = Status.NOT_CHECKED
    section.figures.append(Figure("Ledger checkpoint", checkpoint))
    return IntegrityResult(section, checkpoint, verify_result)


def latest_checkpoint(store: Store, scope: Scope) -> str | None:
    """The newest checkpoint signed before the period ends, as one line; None if no ledger."""
    if not has_table(store, CHECKPOINTS) or missing_columns(store, CHECKPOINTS,
                                                             CHECKPOINT_COLUMNS):
        return None
    tenant_where = "1" if scope.tenant is None else "tenant_id = {tenant:String}"
    rows = store.rows(LATEST_CHECKPOINT_SQL.replace("{tenant_where}", tenant_where),
                      {"end": scope.period.end, **({"tenant": scope.tenant}
                                                   if scope.tenant is not None else {})})
    if not rows:
        return "no checkpoint signed before the period ended"
    origin, size, root, created = rows[0]
    root_text = root.hex() if isinstance(root, bytes) else str(root)
    return f"{origin} tree_size={size} root={root_text[:16]}... signed {created:%Y-%m-%dT%H:%MZ}"
