"""``build_report`` over demo-like rows: every number checked against the records inserted."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from demo_data import PERIOD, SPECS, user_key, write_specs

from genai_audit.clickhouse.reports import RetentionFacts, Status, VerifyOutcome, build_report
from genai_audit.clickhouse.reports.render.common import overall_text

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _report(store, tenant=None, **kw):
    return build_report(store, tenant=tenant, start=PERIOD[0], end=PERIOD[1], now=NOW, **kw)


def _figures(section):
    return {f.label: f.value for f in section.figures}


def _table(section, key):
    return next(t for t in section.tables if t.key == key)


def test_soc2_totals_and_activity_match_the_rows(audit_store, keystore):
    report = _report(audit_store)
    soc2 = report.section("soc2_activity")
    totals = _table(soc2, "soc2_totals").rows[0]
    assert totals[0] == len(SPECS)
    assert totals[1] == sum(s.prompt_tokens for s in SPECS)
    assert totals[2] == sum(s.response_tokens for s in SPECS)
    assert totals[4] == sum((s.cost for s in SPECS), Decimal(0))
    expected: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0), 0])
    for s in SPECS:
        key = (s.at.date(), s.tenant_id, s.tool,
               user_key(keystore, s.tenant_id, s.user), s.model)
        expected[key][0] += s.prompt_tokens + s.response_tokens
        expected[key][1] += s.cost
        expected[key][2] += 1
    activity = _table(soc2, "soc2_activity")
    assert {tuple(r[:5]): list(r[5:]) for r in activity.rows} == dict(expected)
    assert activity.total_rows == len(expected) and not activity.truncated
    assert [r[0] for r in activity.rows] == sorted((r[0] for r in activity.rows), reverse=True)
    assert _figures(soc2)["Users (pseudonymous)"] == str(len({(s.tenant_id, s.user)
                                                              for s in SPECS}))
    daily = next(c for c in soc2.charts if c.key == "daily_interactions")
    assert sum(daily.series["interactions"]) == len(SPECS)


def test_activity_cap_reports_the_total(audit_store):
    full = _table(_report(audit_store, max_rows=0).section("soc2_activity"), "soc2_activity")
    assert not full.truncated and len(full.rows) == full.total_rows > 5
    activity = _table(_report(audit_store, max_rows=5).section("soc2_activity"),
                      "soc2_activity")
    assert len(activity.rows) == 5 and activity.truncated
    assert "Showing the 5 most recent groups" in activity.note
    assert activity.rows == full.rows[:5]


def test_pii_controls(audit_store):
    pii = _report(audit_store).section("pii_controls")
    detected = [s for s in SPECS if s.has_pii]
    assert pii.status is Status.ATTENTION  # one interaction reached the LLM unredacted
    figures = _figures(pii)
    assert figures["PII sent unredacted"] == str(sum(not s.redacted_before_llm for s in detected))
    assert figures["Interactions with PII"].startswith(f"{len(detected)} (")
    assert figures["Content withheld (fail-closed)"] == "1"
    assert figures["Redaction failures"] == "1"
    entities = {r[0]: (r[1], r[2]) for r in _table(pii, "pii_entities").rows}
    assert entities == {
        "EMAIL_ADDRESS": (sum(s.emails for s in detected), sum(bool(s.emails) for s in detected)),
        "US_SSN": (sum(s.ssns for s in detected), sum(bool(s.ssns) for s in detected))}
    sample = _table(pii, "pii_sample")
    assert len(sample.rows) == len(detected) and sample.total_rows == len(detected)
    assert all("@" not in str(v) for row in sample.rows for v in row)  # no content


def test_cost_attribution(audit_store):
    cost = _report(audit_store).section("cost_attribution")
    by_tool: Counter[str] = Counter()
    for s in SPECS:
        by_tool[s.tool] += s.cost
    rows = _table(cost, "cost_by_tool").rows
    assert {r[0]: r[1] for r in rows} == dict(by_tool)
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    assert _figures(cost)["Calls without a price"] == "1"
    assert _figures(cost)["Tokens not costed"] == "750"
    monthly = {r[0]: r for r in _table(cost, "cost_month_over_month").rows}
    march = sum((s.cost for s in SPECS if s.at.month == 3), Decimal(0))
    april = sum((s.cost for s in SPECS if s.at.month == 4), Decimal(0))
    assert monthly["2024-03"][1:] == (march, sum(s.at.month == 3 for s in SPECS), "new")
    assert monthly["2024-04"][1] == april
    assert monthly["2024-04"][3] == f"{float((april - march) / march) * 100:+.1f}%"
    top = _table(cost, "cost_top_users").rows
    assert len(top) == len({(s.tenant_id, s.user) for s in SPECS})


def test_failures_hipaa_and_not_available_sections(audit_store):
    report = _report(audit_store)
    failures = {r[0]: r[3] for r in _table(report.section("control_failures"),
                                           "control_failures").rows}
    assert failures == {"unattributed": 1, "unknown_model": 1, "redaction_failed": 1,
                        "content_withheld": 1}
    assert _figures(report.section("control_failures"))["Records with control failures"] == "3"
    hipaa = report.section("hipaa")
    assert hipaa.status is Status.ATTENTION
    assert _figures(hipaa) == {"Interactions carrying PHI": "2", "PHI on a non-HIPAA route": "1",
                               "Disclosures (decrypting reads)": "0"}
    assert report.section("gdpr").status is Status.OK  # no erasure requests in the period
    integrity = report.section("integrity")  # the ledger is there; this report did not verify
    # ... so it is "Not checked", never "OK" for a check that did not run (issue 17)
    assert integrity.status is Status.NOT_CHECKED and "tree_size=" in report.provenance.checkpoint
    assert "Not checked by this report: Integrity" in overall_text(report)
    assert report.provenance.verify_result.startswith("not run")
    assert report.overall is Status.ATTENTION


def test_tenant_scope(audit_store):
    report = _report(audit_store, tenant="globex")
    globex = [s for s in SPECS if s.tenant == "globex"]
    assert _table(report.section("soc2_activity"), "soc2_totals").rows[0][0] == len(globex)
    assert {r[1] for r in _table(report.section("soc2_activity"), "soc2_activity").rows} == {
        "globex"}
    assert report.title.endswith("tenant globex")
    empty = build_report(audit_store, tenant="nobody", start=PERIOD[0], end=PERIOD[1], now=NOW)
    assert "No LLM interactions" in empty.section("soc2_activity").summary


def test_a_tenant_report_shows_that_tenant_only(audit_store):
    """Issue 17: a tenant's report named the newest checkpoint of ANY tenant in its
    provenance, and counted other tenants' unattributed spans, so an empty tenant's report
    said "Needs attention"."""
    tenant_of = dict(audit_store.rows("SELECT origin, tenant_id FROM ledger_checkpoints"))
    assert len(set(tenant_of.values())) > 1  # several tenants' logs to choose from
    for tenant in ("globex", "acme"):
        report = _report(audit_store, tenant=tenant)
        origin = report.provenance.checkpoint.split(" ")[0]
        assert tenant_of[origin] == tenant
        assert "Unattributed spans" not in _figures(report.section("control_failures"))
    empty = build_report(audit_store, tenant="nobody", start=PERIOD[0], end=PERIOD[1], now=NOW)
    assert empty.section("control_failures").status is Status.OK
    assert empty.provenance.checkpoint == "no checkpoint signed before the period ended"
    # the all-tenant report still counts the spans that belong to no tenant
    assert _figures(_report(audit_store).section("control_failures"))[
        "Unattributed spans"] == "1"


def test_retention_facts(audit_store):
    # Rows are kept 3650 days: move "now" so some of them fall due within 30 days.
    now = SPECS[0].at + timedelta(days=3650 - 30 + 3)
    section = build_report(audit_store, tenant=None, start=PERIOD[0], end=PERIOD[1],
                           now=now).section("retention")
    due = sum(s.at + timedelta(days=3650) < now + timedelta(days=30) for s in SPECS)
    assert 0 < due < len(SPECS)
    assert _figures(section)["Expiring within 30 days"] == str(due)
    assert _figures(section)["Records held now"] == str(len(SPECS))
    assert any("not available" in n for n in section.notes)
    provided = _report(audit_store, retention=lambda store, scope: RetentionFacts(
        2, 17, "2026-10-01T02:00Z file:///archive, 40 records", "signature OK")
    ).section("retention")
    assert _figures(provided)["Active legal holds"] == "2"


def test_erasures_disclosures_and_verify_read_their_tables_when_present(audit_store):
    # Tombstones and disclosures dated inside (and after) the period, in the real tables.
    audit_store.insert("subject_erasures", [
        ["req-1", datetime(2024, 4, 2, tzinfo=UTC), "acme", 7, "dpo@acme"],
        ["req-2", datetime(2024, 6, 2, tzinfo=UTC), "acme", 3, "dpo@acme"]],  # after period
        ["request_id", "erased_at", "tenant_id", "records_affected", "operator"])
    audit_store.insert("access_log", [
        [datetime(2024, 4, 3, tzinfo=UTC), "acme", "dr.who", "treatment", [uuid4(), uuid4()]],
        [datetime(2024, 4, 4, tzinfo=UTC), "acme", "dr.who", "treatment", [uuid4()]]],
        ["accessed_at", "tenant_id", "actor", "purpose", "record_ids"])

    def verifier(store, scope):
        return VerifyOutcome(False, "acme tree_size=41 root=ab...", "1 record modified",
                             [("rec-1", "12", "modified")])

    report = _report(audit_store, tenant="acme", verifier=verifier)
    gdpr = report.section("gdpr")
    assert gdpr.status is Status.OK
    assert _figures(gdpr) == {"Erasures completed": "1", "Records made unreadable": "7"}
    disclosures = _table(report.section("hipaa"), "disclosures")
    assert disclosures.rows[0][:4] == ("dr.who", "treatment", 2, 3)
    integrity = report.section("integrity")
    assert integrity.status is Status.ATTENTION
    assert _table(integrity, "integrity_problems").rows == [("rec-1", "12", "modified")]
    assert report.provenance.checkpoint == "acme tree_size=41 root=ab..."
    assert report.provenance.verify_result == "1 record modified"


def test_schema_mismatch_is_stated_not_guessed(audit_store):
    audit_store.command("DROP TABLE subject_erasures")
    audit_store.command("CREATE TABLE subject_erasures (request_id String, at DateTime) "
                        "ENGINE = MergeTree ORDER BY at")
    gdpr = _report(audit_store).section("gdpr")
    assert gdpr.status is Status.NOT_AVAILABLE
    assert "lacks column(s)" in gdpr.summary and "erased_at" in gdpr.summary


def test_period_must_not_be_empty(audit_store):
    with pytest.raises(ValueError, match="empty"):
        build_report(audit_store, tenant=None, start=PERIOD[1], end=PERIOD[0])


def test_a_record_with_several_failures_counts_once(audit_store, keystore):
    orphan = dataclasses.replace(SPECS[-1], model="mystery-llm-9",
                                 at=SPECS[-1].at + timedelta(minutes=5))
    assert orphan.tenant is None
    write_specs(audit_store, keystore, [orphan])  # unattributed AND unknown_model
    failures = _report(audit_store).section("control_failures")
    assert _figures(failures)["Unattributed spans"] == "2"
    assert _figures(failures)["Records with control failures"] == "4"  # not 5
