"""Every Grafana panel's SQL, expanded as grafana-clickhouse-datasource expands it, runs
against demo-like rows in the embedded store and returns rows of the panel's shape.

Macro expansion follows the plugin's pkg/macros/macros.go: ``$__timeFilter(c)`` ->
``c >= toDateTime(FROM) AND c <= toDateTime(TO)`` (unix seconds), ``$__timeInterval(c)`` ->
``toStartOfInterval(toDateTime(c), INTERVAL N second)``, and so on. Template variables are
interpolated first, as Grafana does (``${tenant:singlequote}`` -> ``'a','b'``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from uuid import uuid4

import pytest
import yaml
from demo_data import PERIOD, SPECS

from genai_audit.clickhouse.reports.scope import has_table

pytestmark = pytest.mark.integration

GRAFANA = resources.files("genai_audit.clickhouse").joinpath("grafana")
DASHBOARDS = sorted((p.name, json.loads(p.read_text()))
                    for p in GRAFANA.joinpath("dashboards").iterdir()
                    if p.name.endswith(".json"))
INTERVAL_S = 3600
NEEDS = {"ledger_checkpoints": "the ledger (issue 4)",
         "subject_erasures": "erasure (issue 5)", "access_log": "disclosures (issue 5)"}


def _dt(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _dt_ms(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"


def _d(t: datetime) -> str:
    return f"toDate('{t:%Y-%m-%d}')"


def expand_macros(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    """The plugin's macros, same output text (pkg/macros/macros.go)."""
    def one(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip() for a in (match.group(2) or "").split(",")]
        if name == "timeFilter":
            return f"{args[0]} >= {_dt(start)} AND {args[0]} <= {_dt(end)}"
        if name == "timeFilter_ms":
            return f"{args[0]} >= {_dt_ms(start)} AND {args[0]} <= {_dt_ms(end)}"
        if name == "dateFilter":
            return f"{args[0]} >= {_d(start)} AND {args[0]} <= {_d(end)}"
        if name in ("dateTimeFilter", "dt"):
            return (f"({args[0]} >= {_d(start)} AND {args[0]} <= {_d(end)}) AND "
                    f"({args[1]} >= {_dt(start)} AND {args[1]} <= {_dt(end)})")
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({args[0]}), INTERVAL {interval_s} second)"
        if name == "timeInterval_ms":
            return (f"toStartOfInterval(toDateTime64({args[0]}, 3), "
                    f"INTERVAL {interval_s * 1000} millisecond)")
        if name == "interval_s":
            return str(interval_s)
        return {"fromTime": _dt(start), "toTime": _dt(end), "fromTime_ms": _dt_ms(start),
                "toTime_ms": _dt_ms(end)}[name]
    return re.sub(r"\$__(\w+)(?:\(([^()]*)\))?", one, sql)


def interpolate(sql: str, variables: dict[str, list[str]]) -> str:
    def one(match: re.Match[str]) -> str:
        values = variables[match.group(1)]
        if match.group(2) == "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        return ",".join(values)
    return re.sub(r"\$\{(\w+)(?::(\w+))?\}", one, sql)


def _panels():
    for name, dashboard in DASHBOARDS:
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                yield pytest.param(dashboard, panel, target,
                                   id=f"{name[:-5]}:{panel['id']}:{panel['title']}")


def test_provisioning_files_name_the_official_plugin():
    ds = yaml.safe_load(GRAFANA.joinpath("provisioning/datasources/"
                                         "genai-audit-clickhouse.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["defaultDatabase"] == "genai_audit"
    assert "password" in source["secureJsonData"]
    boards = yaml.safe_load(GRAFANA.joinpath("provisioning/dashboards/genai-audit.yaml")
                            .read_text())
    assert boards["providers"][0]["type"] == "file"
    uids = {p["datasource"]["uid"] for _, d in DASHBOARDS for p in d["panels"]}
    assert uids == {source["uid"]}
    assert len(DASHBOARDS) == 2


def test_macro_expansion_matches_the_plugin():
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    assert expand_macros("$__timeFilter(ts)", start, end, 60) == \
        "ts >= toDateTime(1709251200) AND ts <= toDateTime(1709337600)"
    assert expand_macros("$__timeInterval(ts)", start, end, 60) == \
        "toStartOfInterval(toDateTime(ts), INTERVAL 60 second)"


@pytest.fixture(scope="module")
def panel_store(shared_audit_store):
    """The demo rows plus one erasure and one disclosure inside the period."""
    at, key = PERIOD[0] + timedelta(days=3), "0" * 32
    shared_audit_store.insert(
        "subject_erasures", [[uuid4(), at, "acme", key, 4, "dpo", "subject-request", "DSR-1"]],
        ["erasure_id", "erased_at", "tenant_id", "gdpr_pseudonymized_user_key",
         "records_affected", "operator", "reason", "request_id"])
    shared_audit_store.insert(
        "access_log", [[uuid4(), at, "acme", "dr.who", "treatment", "show", [uuid4()], [key],
                        1, 0]],
        ["access_id", "accessed_at", "tenant_id", "actor", "purpose", "channel", "record_ids",
         "user_keys", "records_disclosed", "records_erased"])
    return shared_audit_store


@pytest.mark.parametrize("dashboard, panel, target", list(_panels()))
def test_panel_sql_runs_and_has_the_panel_shape(panel_store, dashboard, panel, target):
    shared_audit_store = panel_store
    (var,) = dashboard["templating"]["list"]
    tenants = [str(r[0]) for r in shared_audit_store.rows(var["query"])]
    assert "acme" in tenants
    sql = expand_macros(interpolate(target["rawSql"], {"tenant": tenants}), *PERIOD,
                        INTERVAL_S)
    assert "$" not in sql, sql
    missing = [t for t in NEEDS if re.search(rf"\bFROM {t}\b", sql)
               and not has_table(shared_audit_store, t)]
    if missing:
        shared_audit_store.rows("EXPLAIN AST " + sql)  # at least it parses
        pytest.skip(f"needs table {missing[0]} from {NEEDS[missing[0]]}: runs once it lands")
    result = shared_audit_store.query(sql)
    columns, rows = list(result.column_names), [tuple(r) for r in result.result_rows]
    assert rows, f"panel {panel['title']!r} returned no rows on the demo data"
    numeric = (int, float, Decimal)
    if target["queryType"] == "timeSeries":
        assert columns[0] == "time" and all(isinstance(r[0], datetime) for r in rows)
        labels = [i for i, v in enumerate(rows[0][1:], 1) if isinstance(v, str)]
        assert len(labels) <= 1 and len(columns) - 1 - len(labels) >= 1
        assert all(isinstance(r[i], numeric) for r in rows
                   for i in range(1, len(columns)) if i not in labels)
        times = [r[0] for r in rows]
        assert times == sorted(times) and all(t.timestamp() % INTERVAL_S == 0 for t in times)
    elif panel["type"] == "stat":
        assert len(rows) == 1 and len(columns) == 1 and isinstance(rows[0][0], numeric)
    else:
        assert all(isinstance(v, (*numeric, str, bool, datetime, date)) for r in rows
                   for v in r)


def _stat(shared_audit_store, uid, title):
    dashboard = next(d for _, d in DASHBOARDS if d["uid"] == uid)
    panel = next(p for p in dashboard["panels"] if p["title"] == title)
    tenants = [str(r[0]) for r in shared_audit_store.rows(dashboard["templating"]["list"][0]["query"])]
    sql = expand_macros(interpolate(panel["targets"][0]["rawSql"], {"tenant": tenants}),
                        *PERIOD, INTERVAL_S)
    return shared_audit_store.scalar(sql)


def test_panel_numbers_match_the_rows(shared_audit_store):
    assert _stat(shared_audit_store, "genai-audit-cost", "Total cost") == \
        sum((s.cost for s in SPECS), Decimal(0))
    assert _stat(shared_audit_store, "genai-audit-cost", "LLM calls") == len(SPECS)
    assert _stat(shared_audit_store, "genai-audit-compliance", "Interactions with PII") == \
        sum(s.has_pii for s in SPECS)
    assert _stat(shared_audit_store, "genai-audit-compliance", "PHI on a non-HIPAA route") == 1
    assert _stat(shared_audit_store, "genai-audit-compliance", "Unattributed spans (no tenant)") == 1
