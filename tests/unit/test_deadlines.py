"""Every engine or network wait has a deadline (issue 17): a ClickHouse server that accepts
connections and never answers used to hold a request for the driver's 300 s default, and
`shutdown(500 ms)` took 8 s against a store that hung 4 s."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace import TracerProvider

from genai_audit.clickhouse.errors import StoreUnavailable
from genai_audit.clickhouse.store import Store
from genai_audit.config import Settings
from genai_audit.exporter.span_exporter import ClickHouseSpanExporter
from genai_audit.exporter.spool import Spool
from genai_audit.processor.pipeline import RecordPipeline
from genai_audit.processor.span_processor import ComplianceSpanProcessor

GENAI = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback server that accepts connections and never answers a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_a_server_that_never_answers_fails_within_the_deadline(silent_server):
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        Store.open(f"http://default:x@127.0.0.1:{silent_server}", "db", timeout_s=0.5)
    assert time.monotonic() - started < 10  # not the driver's 300 s read default


class HangingWriter:
    """An interactions writer whose insert hangs until released (a hung store)."""

    def __init__(self) -> None:
        self.store = SimpleNamespace(close=lambda: None)
        self.ledger = None
        self.release = threading.Event()
        self.entered = threading.Event()

    def prepare(self, records):
        return list(records)

    def insert(self, batch) -> None:
        self.entered.set()
        self.release.wait(30)

    def committed(self, batch) -> None:
        pass

    def failed(self, batch) -> None:
        pass


def test_shutdown_honours_its_deadline_while_a_write_hangs(tmp_path):
    writer = HangingWriter()
    settings = Settings.load({"schedule_delay_ms": 10}, env={})
    exporter = ClickHouseSpanExporter(settings, writer=writer,  # type: ignore[arg-type]
                                      pipeline=RecordPipeline([]),
                                      spool=Spool(tmp_path / "spool", 1 << 20))
    processor = ComplianceSpanProcessor(exporter, settings)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("c", attributes=GENAI):
        pass
    assert writer.entered.wait(10)  # the write is in flight and hangs
    started = time.monotonic()
    processor.shutdown(timeout_millis=500)
    took = time.monotonic() - started
    writer.release.set()
    assert took < 3, f"shutdown(500 ms) took {took:.1f} s"
