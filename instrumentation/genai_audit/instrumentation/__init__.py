"""Instrumentation side: the compliance context and the opentelemetry-instrument distro."""

from __future__ import annotations

from genai_audit.instrumentation.context import audit_context, current_audit_context

__all__ = ["audit_context", "current_audit_context"]
