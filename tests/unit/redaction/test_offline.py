"""No network: engines build and run with sockets blocked; importing costs no model load."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import warnings
from typing import Any

import pytest

from genai_audit.processor.redaction.engine import (
    RedactionEngine,
    force_offline_tldextract,
    presidio_default_engines,
)


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise OSError("network is blocked in this test")


def test_presidio_and_ours_work_with_sockets_blocked(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import tldextract.tldextract as tld

    monkeypatch.setattr(tld, "TLD_EXTRACTOR", tld.TLDExtract())  # the stock one: would fetch
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyzer, _anonymizer = presidio_default_engines()
        found = analyzer.analyze("write to maria@clinic.co.uk today", language="en")
        ours = RedactionEngine().warm().analyze("write to maria@clinic.co.uk today")
    assert [r.entity_type for r in found if r.entity_type == "EMAIL_ADDRESS"]
    assert [f.entity for f in ours] == ["EMAIL_ADDRESS"]
    assert not [r for r in caplog.records if r.name.startswith("tldextract")
                and r.levelno >= logging.WARNING]
    force_offline_tldextract()  # idempotent
    assert tld.TLD_EXTRACTOR.suffix_list_urls == ()


def test_importing_the_pipeline_and_the_guard_loads_no_model() -> None:
    code = ("import sys, genai_audit.processor.factory, genai_audit.instrumentation.guard, "
            "genai_audit.processor.redaction; "
            "print(sorted(m for m in ('spacy', 'presidio_analyzer', 'thinc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
