"""Fixtures of the gateway tests (the harness is in gateway_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_harness import TOKENS, Gateway

from genai_audit.exporter.gateway.auth import hash_token


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text("".join(f'[[token]]\ntenant = "{tenant}"\nsha256 = "{hash_token(tok)}"\n'
                            for tenant, tok in TOKENS.items()))
    return path


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[list[Gateway]]:
    """Started gateways register here and are killed at the end, whatever happened."""
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.kill()
