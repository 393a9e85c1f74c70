"""``audit_context``: who, for which tenant and through which tool an LLM call is made.

Sets W3C baggage, so the context survives thread hand-offs that copy the OTel context and
crosses process boundaries with the standard propagators. Works as a context manager and
as a decorator (sync and async functions)::

    with audit_context(tenant_id="acme", user_id="u-42", tool_name="hr_helpdesk"):
        client.chat.completions.create(...)

    @audit_context(tenant_id="acme", tool_name="contract_review")
    def review(doc): ...

A tool written synchronously (``sync_tools``) whose record could not be stored in time
raises ``AuditDurabilityError`` when the block or decorated function ends (with
``sync_on_failure = raise``); see ``durability.py``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from opentelemetry import baggage, context
from opentelemetry.sdk.trace import Span

from genai_audit.instrumentation.durability import durability_scope
from genai_audit.instrumentation.keys import BAGGAGE_KEYS, CONTEXT_KEYS

F = TypeVar("F", bound=Callable[..., Any])

#: Context value (not baggage: it must not leave the process) holding span attributes that
#: the pre-LLM guard wants on the span of the call it makes; see ``guard.py``.
GUARD_ATTRIBUTES_KEY = context.create_key("genai_audit.guard_attributes")


class audit_context:
    """Set the compliance context for everything run inside it."""

    def __init__(self, *, tenant_id: str | None = None, user_id: str | None = None,
                 session_id: str | None = None, tool_name: str | None = None,
                 feature_name: str | None = None, region: str | None = None,
                 data_class: str | None = None) -> None:
        given = {"tenant_id": tenant_id, "user_id": user_id, "session_id": session_id,
                 "tool_name": tool_name, "feature_name": feature_name, "region": region,
                 "data_class": data_class}
        self.values: dict[str, str] = {}
        for name, value in given.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(f"audit_context: {name} must be a str, got {type(value).__name__}")
            self.values[CONTEXT_KEYS[name]] = value
        self._tokens: list[object] = []
        self._scopes: list[AbstractContextManager[None]] = []

    def __enter__(self) -> audit_context:
        scope = durability_scope()
        scope.__enter__()
        self._scopes.append(scope)
        self._tokens.append(context.attach(_with_baggage(self.values)))
        return self

    def __exit__(self, *exc: object) -> None:
        context.detach(self._tokens.pop())  # type: ignore[arg-type]
        # raises AuditDurabilityError if a synchronous audit write inside failed (the
        # block's own exception, if any, is not masked)
        self._scopes.pop().__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _scope(self.values):
                    return await func(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _scope(self.values):
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


def stamp_baggage(span: Span, parent_context: context.Context | None) -> None:
    """Copy the compliance baggage onto a starting span (attributes it already has win),
    and the pre-LLM guard's verdict if the span starts inside a guarded call."""
    guard_attrs = context.get_value(GUARD_ATTRIBUTES_KEY, parent_context)
    if isinstance(guard_attrs, Mapping):
        span.set_attributes(guard_attrs)
    entries = baggage.get_all(parent_context)
    if not entries:
        return
    existing = span.attributes or {}
    for key in BAGGAGE_KEYS:
        value = entries.get(key)
        if value is not None and key not in existing:
            span.set_attribute(key, str(value))


def current_audit_context() -> dict[str, str]:
    """The compliance baggage of the current context (baggage key -> value)."""
    entries = baggage.get_all()
    return {key: str(entries[key]) for key in CONTEXT_KEYS.values() if key in entries}


@contextmanager
def _scope(values: Mapping[str, str]) -> Iterator[None]:
    with durability_scope():
        token = context.attach(_with_baggage(values))
        try:
            yield
        finally:
            context.detach(token)


def _with_baggage(values: Mapping[str, str]) -> context.Context:
    ctx = context.get_current()
    for key, value in values.items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    return ctx
