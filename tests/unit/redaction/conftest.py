from __future__ import annotations

import pytest

from genai_audit.processor.redaction.engine import RedactionEngine, shared_engine


@pytest.fixture(scope="session")
def engine() -> RedactionEngine:
    """The process's engine, model loaded once for the whole session."""
    return shared_engine().warm()
