"""How a failed synchronous audit write reaches the application without raising in the SDK.

A tool named in ``sync_tools`` is written before its span's ``on_end`` returns. When that
write fails (or times out) and ``sync_on_failure = raise``, the span processor must still
not raise: an exception from ``on_end`` skips every span processor after it (a second
exporter such as ``OTEL_TRACES_EXPORTER=genai_audit,otlp`` would lose the span). Instead the
processor reports the failure here, into the scope of the code that made the call, and the
scope raises ``AuditDurabilityError`` as the call's block ends:

    with audit_context(tenant_id="acme", tool_name="contract_review"):
        client.chat.completions.create(...)   # record not stored in time ->
    # ... AuditDurabilityError raised here, when the block exits

``audit_context`` (context manager and decorator) opens such a scope; ``durability_scope``
opens one on its own. Outside any scope the failure is the logged ``ALARM`` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["AuditDurabilityError", "durability_scope", "report_durability_failure"]


class AuditDurabilityError(RuntimeError):
    """A synchronously audited call could not be recorded in time."""


_failures: ContextVar[list[str] | None] = ContextVar("genai_audit_durability", default=None)


def report_durability_failure(message: str) -> bool:
    """Record a failed synchronous write in the caller's scope; False when there is none
    (the caller then only logs the alarm). Never raises."""
    holder = _failures.get()
    if holder is None:
        return False
    holder.append(message)
    return True


@contextmanager
def durability_scope() -> Iterator[None]:
    """Raise ``AuditDurabilityError`` on exit if a synchronous audit write inside failed
    (unless the block already raises: its own exception is not masked)."""
    holder: list[str] = []
    token = _failures.set(holder)
    try:
        yield
    finally:
        _failures.reset(token)
    if holder:
        raise AuditDurabilityError(holder[0] + (f" (and {len(holder) - 1} more)"
                                                if len(holder) > 1 else ""))
