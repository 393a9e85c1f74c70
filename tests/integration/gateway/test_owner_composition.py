"""The gateway composes its parts like every other owner: the store's retention policies.

Regression (issue 15): ``serve`` built its own pipeline with the static default, so
``retention set --tenant globex --days 1`` was ignored behind the collector (records landed
with 365 days) while the in-process exporter on the same store stamped 1.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from gateway_harness import CLI, TOKENS, Gateway, query
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_faults import post

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cli(*args: str) -> None:
    env = {**os.environ, "GENAI_AUDIT_CONFIG": ""}
    env.pop("GENAI_AUDIT_DSN", None)
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_stamps_the_stores_per_tenant_retention(tmp_path, tokens_file, gateways,
                                                      make_span, workers):
    dsn = f"chdb://{tmp_path / 'store'}"
    _cli("retention", "set", "--dsn", dsn, "--tenant", "globex", "--new-tenant", "--days", "1",
         "--reason", "test: short", "--actor", "tester")
    _cli("retention", "set", "--dsn", dsn, "--tenant", "*", "--days", "400",
         "--content-days", "30", "--reason", "test: store default", "--actor", "tester")
    gw = Gateway(tmp_path, dsn, tokens_file=tokens_file,
                 extra=["--workers", str(workers)]).start()
    gateways.append(gw)
    globex = encode_spans([make_span(tenant__id="globex") for _ in range(3)])
    acme = encode_spans([make_span(tenant__id="acme") for _ in range(2)])
    assert post(gw, globex.SerializeToString(),
                headers={"Authorization": f"Bearer {TOKENS['globex']}"})[0] == 200
    assert post(gw, acme.SerializeToString())[0] == 200
    assert gw.stop() == 0
    rows = query(dsn, "SELECT tenant_id, retention_days AS days, content_retention_days AS "
                      "content, count() AS n FROM interactions GROUP BY ALL ORDER BY tenant_id")
    assert rows == [{"tenant_id": "acme", "days": 400, "content": 30, "n": 2},
                    {"tenant_id": "globex", "days": 1, "content": 1, "n": 3}]
