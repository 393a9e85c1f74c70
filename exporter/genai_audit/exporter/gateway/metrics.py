"""Gateway metrics in Prometheus text format, shared by every gateway process.

The counters live in one ``multiprocessing`` shared array created by the store owner and
handed to each worker, so ``/metrics`` on whichever worker a scrape reaches reports the
whole gateway (not one process's share).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.sharedctypes
from collections.abc import Sequence
from typing import Any

COUNTERS: dict[str, str] = {
    "requests": "export requests received",
    "received_spans": "spans received (decoded)",
    "ignored_spans": "spans accepted but not GenAI (no audit record)",
    "stored_records": "audit records written to the store",
    "spooled_records": "audit records written to the on-disk spool (store unreachable)",
    "drained_records": "spooled audit records later written to the store",
    "duplicate_records": "records already stored (a replay or retry), not written again",
    "truncated_spans": "spans with an attribute truncated to the size limit",
    "invalid_utf8_requests": "requests with strings that were not UTF-8 (repaired, flagged)",
    "unknown_field_requests": "protobuf requests with fields unknown to this OTLP version "
                              "(ignored)",
    "maintenance_runs": "maintenance passes run by the store owner (holds, retention, archive)",
    "maintenance_failures": "maintenance passes with a failed step (see control_events)",
    "checkpoint_failures": "ledger checkpoints that could not be stored (retried; see "
                           "control_events)",
    "log_requests": "OTLP logs export requests received",
    "received_log_records": "log records received (decoded)",
    "ignored_log_records": "log records that are not GenAI events (dropped)",
    "genai_events": "GenAI log events held for their span's record",
    "unjoinable_events": "GenAI log events without a span context (dropped)",
    "joined_records": "audit records that received content from GenAI log events",
    "event_waits": "trace requests whose content-less spans waited for their GenAI events",
    "dropped_events": "GenAI log events dropped unjoined: their span did not arrive in time",
    "metric_requests": "OTLP metrics export requests received (counted, not stored)",
    "dropped_metrics": "metrics received and dropped (nothing of them is stored)",
    "http_connections_refused": "HTTP connections answered 503 and closed: every connection "
                                "slot was taken",
    "read_connections_refused": "read-interface connections answered 503 and closed: "
                                "every connection slot was taken",
}
REJECT_REASONS: tuple[str, ...] = (
    "unauthenticated", "tenant_mismatch", "invalid_trace_id", "invalid_span_id",
    "invalid_parent_span_id", "malformed", "too_large", "unsupported_media_type",
    "unavailable", "store_error", "other",
)
GAUGES: dict[str, str] = {
    "spool_batches": "batches waiting in the on-disk spool (queue depth)",
    "spool_records": "records waiting in the on-disk spool",
    "spool_bytes": "bytes used by the on-disk spool",
}
HISTOGRAMS: dict[str, str] = {
    "store_latency_seconds": "time to make a batch durable (store insert or spool)",
    "request_latency_seconds": "time to answer an export request",
}
BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                              2.5, 5.0, 10.0)
_PREFIX = "genai_audit_gateway_"


def _layout() -> dict[str, int]:
    names = [*COUNTERS, *(f"rejected:{r}" for r in REJECT_REASONS), *GAUGES]
    for hist in HISTOGRAMS:
        names += [f"{hist}:{i}" for i in range(len(BUCKETS))] + [f"{hist}:sum",
                                                                   f"{hist}:count"]
    return {name: i for i, name in enumerate(names)}


_INDEX = _layout()


def new_shared_array() -> Any:
    """The shared counters (pass to worker processes at spawn)."""
    return multiprocessing.get_context("spawn").Array("d", len(_INDEX), lock=True)


class Metrics:
    def __init__(self, array: Any = None) -> None:
        self.array = array if array is not None else new_shared_array()

    def inc(self, name: str, amount: float = 1) -> None:
        self._add(name, amount)

    def reject(self, reason: str, spans: int = 1) -> None:
        key = f"rejected:{reason}" if f"rejected:{reason}" in _INDEX else "rejected:other"
        self._add(key, spans)

    def set_gauge(self, name: str, value: float) -> None:
        with self.array.get_lock():
            self.array[_INDEX[name]] = value

    def observe(self, histogram: str, seconds: float) -> None:
        with self.array.get_lock():
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.array[_INDEX[f"{histogram}:{i}"]] += 1
                    break
            self.array[_INDEX[f"{histogram}:sum"]] += seconds
            self.array[_INDEX[f"{histogram}:count"]] += 1

    def value(self, name: str) -> float:
        return float(self.array[_INDEX[name]])

    def rejected(self, reason: str) -> float:
        return self.value(f"rejected:{reason}")

    def _add(self, key: str, amount: float) -> None:
        with self.array.get_lock():
            self.array[_INDEX[key]] += amount

    def render(self) -> str:
        with self.array.get_lock():
            snapshot: Sequence[float] = list(self.array)
        lines: list[str] = []
        for name, help_text in COUNTERS.items():
            lines += _header(f"{name}_total", help_text, "counter")
            lines.append(f"{_PREFIX}{name}_total {_num(snapshot[_INDEX[name]])}")
        lines += _header("rejected_spans_total", "spans (or requests) rejected, by reason",
                         "counter")
        for reason in REJECT_REASONS:
            lines.append(f'{_PREFIX}rejected_spans_total{{reason="{reason}"}} '
                         f"{_num(snapshot[_INDEX['rejected:' + reason]])}")
        for name, help_text in GAUGES.items():
            lines += _header(name, help_text, "gauge")
            lines.append(f"{_PREFIX}{name} {_num(snapshot[_INDEX[name]])}")
        for hist, help_text in HISTOGRAMS.items():
            lines += _header(hist, help_text, "histogram")
            cumulative = 0.0
            for i, bound in enumerate(BUCKETS):
                cumulative += snapshot[_INDEX[f"{hist}:{i}"]]
                lines.append(f'{_PREFIX}{hist}_bucket{{le="{bound}"}} {_num(cumulative)}')
            count = snapshot[_INDEX[f"{hist}:count"]]
            lines.append(f'{_PREFIX}{hist}_bucket{{le="+Inf"}} {_num(count)}')
            lines.append(f"{_PREFIX}{hist}_sum {snapshot[_INDEX[hist + ':sum']]:.6f}")
            lines.append(f"{_PREFIX}{hist}_count {_num(count)}")
        return "\n".join(lines) + "\n"


def _header(name: str, help_text: str, kind: str) -> list[str]:
    return [f"# HELP {_PREFIX}{name} {help_text}", f"# TYPE {_PREFIX}{name} {kind}"]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
