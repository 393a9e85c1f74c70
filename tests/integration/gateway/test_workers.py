"""Several worker processes share the listeners; one store owner writes."""

from __future__ import annotations

import concurrent.futures

import pytest
from gateway_harness import Gateway, query
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_faults import post

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_two_workers_share_ports_and_metrics(tmp_path, tokens_file, gateways, make_span):
    dsn = f"chdb://{tmp_path / 'store'}"
    gw = Gateway(tmp_path, dsn, tokens_file=tokens_file, extra=["--workers", "2"]).start()
    gateways.append(gw)
    bodies = [encode_spans([make_span() for _ in range(4)]).SerializeToString()
              for _ in range(24)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda body: post(gw, body)[0], bodies))
    assert statuses == [200] * 24
    # every scrape, whichever worker answers, reports the whole gateway
    assert {gw.metrics()["received_spans_total"] for _ in range(4)} == {96}
    assert gw.stop() == 0
    assert query(dsn, "SELECT count() AS n, uniqExact(id) AS u FROM interactions") == [
        {"n": 96, "u": 96}]
