"""Instrumentation side: the compliance context and the opentelemetry-instrument distro."""

from __future__ import annotations

from genai_audit.instrumentation.context import audit_context, current_audit_context
from genai_audit.instrumentation.durability import AuditDurabilityError, durability_scope

__all__ = ["AuditDurabilityError", "audit_context", "current_audit_context",
           "durability_scope"]
