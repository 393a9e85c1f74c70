"""PII/PHI redaction: detection engine, policy, operators, placeholders and the pipeline
stage. Importing this package is cheap: the spaCy model loads on first use, off the
request thread (see ``engine.py``)."""

from __future__ import annotations

from genai_audit.processor.redaction.engine import RedactionEngine, shared_engine
from genai_audit.processor.redaction.placeholders import Placeholders
from genai_audit.processor.redaction.policy import (
    PolicyError,
    PolicySet,
    RedactionPolicy,
    load_policy,
)
from genai_audit.processor.redaction.redact import Redaction, redact

__all__ = ["Placeholders", "PolicyError", "PolicySet", "Redaction", "RedactionEngine",
           "RedactionPolicy", "load_policy", "redact", "shared_engine"]
