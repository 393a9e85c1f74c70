"""Pre-LLM guard: redact prompts before they leave the process, re-fill the answer.

    client = guard(openai.OpenAI())            # or openai.AsyncOpenAI(), or guard_callable(fn)
    with audit_context(tenant_id="acme", user_id="u-1", tool_name="triage", region="EU"):
        reply = client.chat.completions.create(model="gpt-4o", messages=[...])

For each ``chat.completions.create`` call the guard

1. redacts every message text (strings, text parts, tool-call arguments) with the tenant's
   and tool's policy, always as typed placeholders (``<PERSON_1>``), so the provider only
   sees placeholders;
2. decides the route for the user's region (``routing.py``): allowed, rerouted to the
   region's endpoint, or refused (``RouteRefused``; an audit record of the refusal lands);
3. applies the tenant's rate limits and budgets (``limits/``: a refused call raises
   ``LimitExceeded``, an ``openai.RateLimitError``, and is recorded with status 429);
4. makes the call with a context value that the span processor stamps onto the call's span
   (``genai_audit.pii_redacted_before_llm``, route decision, entity counts), so the record
   says ``pii_redacted_before_llm = true``;
5. re-fills the answer (message text and tool-call arguments; streamed chunks too, across
   chunk boundaries) with the original values for the caller.

The value <-> placeholder map lives only in memory for that one call. The model loads when
the guard is built (application start), never on a request.

Nothing that sends content goes around the guard: ``with_options``/``copy`` return a
guarded client, settings and ``models`` (no content) pass through, and every other resource
(``responses``, ``completions``, ``embeddings``, ``beta``, ``with_raw_response``,
``chat.completions.parse``...) raises ``NotGuarded`` instead of sending unredacted text.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Status, StatusCode, TracerProvider

from genai_audit.instrumentation.context import GUARD_ATTRIBUTES_KEY, current_audit_context
from genai_audit.instrumentation.keys import (
    ATTR_GUARD_ENTITY_COUNTS,
    ATTR_HIPAA_COMPLIANT_ROUTE,
    ATTR_LIMIT_FLAGS,
    ATTR_LIMIT_REFUSED,
    ATTR_PII_REDACTED_BEFORE_LLM,
    ATTR_REGION,
    ATTR_ROUTE_DECISION,
    ATTR_ROUTE_ENDPOINT,
    ATTR_TENANT,
    ATTR_TOOL,
    ATTR_USER,
)
from genai_audit.instrumentation.limits import Limiter, LimitExceeded, LimitSettings, load_limits
from genai_audit.instrumentation.limits.limiter import Admission, Refusal
from genai_audit.instrumentation.routing import RouteDecision, RouteRefused, decide
from genai_audit.processor.redaction.engine import RedactionEngine, shared_engine
from genai_audit.processor.redaction.operators import OperatorContext
from genai_audit.processor.redaction.placeholders import Placeholders, StreamRefiller
from genai_audit.processor.redaction.policy import PolicySet, RedactionPolicy, load_policy
from genai_audit.processor.redaction.redact import apply_findings

__all__ = ["Guard", "LimitExceeded", "NotGuarded", "RouteRefused", "guard", "guard_callable"]

DEFAULT_TOOL = "unspecified"

#: client attributes that send no content: they pass through to the wrapped client
_PASS_THROUGH = frozenset({
    "base_url", "api_key", "organization", "project", "webhook_secret", "websocket_base_url",
    "timeout", "max_retries", "default_headers", "default_query", "auth_headers",
    "custom_auth", "user_agent", "platform_headers", "models", "close", "is_closed",
})


class NotGuarded(AttributeError):
    """A client path the guard does not redact; refused so no content leaves unredacted."""

    def __init__(self, path: str) -> None:
        super().__init__(f"guard: {path!r} is not guarded (it could send content unredacted); "
                         "use chat.completions.create, or call the unguarded client on purpose")


CHARS_PER_TOKEN = 4  # the estimate of a prompt's tokens before the call (corrected after)


class _Call:
    """One guarded call: its placeholders, counts, route and admission."""

    def __init__(self, placeholders: Placeholders, counts: dict[str, int],
                 route: RouteDecision, estimate: int = 0) -> None:
        self.placeholders, self.counts, self.route = placeholders, counts, route
        self.estimate = estimate  # input tokens, estimated from the prompt's characters
        self.admission: Admission | None = None

    def span_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            ATTR_PII_REDACTED_BEFORE_LLM: True,
            ATTR_GUARD_ENTITY_COUNTS: json.dumps(self.counts, sort_keys=True),
            ATTR_ROUTE_DECISION: self.route.decision,
            ATTR_ROUTE_ENDPOINT: self.route.endpoint,
            ATTR_HIPAA_COMPLIANT_ROUTE: self.route.compliant}
        if self.admission is not None:
            flags = [*self.admission.flags, *(["budget_alarm"] if self.admission.budget_alarms
                                               else [])]
            if flags:
                attrs[ATTR_LIMIT_FLAGS] = ",".join(flags)
        return attrs


class Guard:
    """Redaction and routing shared by the client wrappers. Thread-safe."""

    def __init__(self, policies: PolicySet | None = None,
                 engine: RedactionEngine | None = None,
                 tracer_provider: TracerProvider | None = None,
                 limits: LimitSettings | Limiter | None = None) -> None:
        self.policies = policies if policies is not None else load_policy()
        self.engine = (engine or shared_engine(self.policies.model)).warm()
        self.tracer = trace.get_tracer("genai_audit.guard", tracer_provider=tracer_provider)
        if not isinstance(limits, Limiter):
            settings = limits if limits is not None else load_limits()
            limits = Limiter(settings) if settings.active else None
        self.limiter = limits

    def _policy(self) -> tuple[RedactionPolicy, dict[str, str]]:
        ctx = current_audit_context()
        policy = self.policies.for_call(ctx.get(ATTR_TENANT, ""),
                                        ctx.get(ATTR_TOOL, DEFAULT_TOOL))
        # the answer must be re-fillable: placeholders whatever the stored operator is
        return replace(policy, enabled=True, operator="replace", operators={}), ctx

    def prepare(self, messages: Any, endpoint: str) -> tuple[Any, _Call]:
        """Redacted copy of ``messages`` and the call's state (raises ``RouteRefused``
        only after the refusal has been recorded)."""
        policy, ctx = self._policy()
        route = decide(self.policies, ctx.get(ATTR_REGION, ""), endpoint, policy.baa_endpoints)
        redacted = copy.deepcopy(messages)  # the caller's messages stay as they were
        slots = list(_message_slots(redacted))
        findings = self.engine.analyze_batch(
            [c[k] for c, k in slots], languages=[policy.languages] * len(slots)) if slots else []
        chars = sum(len(c[k]) for c, k in slots)
        call = _Call(Placeholders(), {}, route, math.ceil(chars / CHARS_PER_TOKEN))
        op_ctx = OperatorContext(call.placeholders, _no_secret)
        for (container, key), found in zip(slots, findings, strict=True):
            result = apply_findings(container[key], found, policy, op_ctx)
            container[key] = result.text
            for entity, count in result.counts.items():
                call.counts[entity] = call.counts.get(entity, 0) + count
        return redacted, call

    def refuse(self, call: _Call, model: str) -> RouteRefused:
        """Record the refusal as a GenAI span (metadata only) and return the error to raise."""
        self._record_refusal(call, model, "RouteRefused", "route refused by region policy")
        return RouteRefused(f"region policy forbids sending this call to {call.route.endpoint}")

    def admit(self, call: _Call, model: str) -> None:
        """Apply the rate limits and budgets (if any); a refused call is recorded (status
        429, flagged with the reason) and raises ``LimitExceeded``."""
        if self.limiter is None:
            return
        ctx = current_audit_context()
        tenant = ctx.get(ATTR_TENANT, "")
        verdict = self.limiter.admit(tenant, ctx.get(ATTR_TOOL, DEFAULT_TOOL),
                                     ctx.get(ATTR_USER), call.estimate)
        if isinstance(verdict, Refusal):
            extra: dict[str, Any] = {ATTR_LIMIT_REFUSED: verdict.reason,
                                     "http.response.status_code": 429}
            if verdict.budget_alarms:
                extra[ATTR_LIMIT_FLAGS] = "budget_alarm"
            self._record_refusal(call, model, "LimitExceeded", verdict.reason, extra)
            raise LimitExceeded(tenant or "_unattributed", verdict.reason, verdict.detail,
                                verdict.retry_after, call.route.endpoint)
        call.admission = verdict

    def settle(self, call: _Call, model: str, usage: Any) -> None:
        """Correct the limits by the call's actual usage (an OpenAI ``usage`` object)."""
        if self.limiter is None or call.admission is None or usage is None:
            return
        details = getattr(usage, "prompt_tokens_details", None)
        self.limiter.settle(call.admission, model, int(getattr(usage, "prompt_tokens", 0) or 0),
                            int(getattr(usage, "completion_tokens", 0) or 0),
                            int(getattr(details, "cached_tokens", 0) or 0))
        call.admission = None  # once

    def _record_refusal(self, call: _Call, model: str, error_type: str, status: str,
                        extra: Mapping[str, Any] | None = None) -> None:
        token = context.attach(context.set_value(GUARD_ATTRIBUTES_KEY, call.span_attributes()))
        try:
            with self.tracer.start_as_current_span(f"chat {model}", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model, "error.type": error_type,
                    **(extra or {})}) as span:
                span.set_status(Status(StatusCode.ERROR, status))
        finally:
            context.detach(token)


def _no_secret() -> bytes:
    raise RuntimeError("the guard only uses placeholders")


def _message_slots(messages: Any) -> Iterator[tuple[Any, Any]]:
    """Text a provider would read: message content (string or text parts), participant
    names and tool-call arguments."""
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"
        if isinstance(message.get("name"), str):
            yield message, "name"
        for tool_call in message.get("tool_calls") or []:
            function = tool_call.get("function") if isinstance(tool_call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                yield function, "arguments"


def _refill_response(response: Any, placeholders: Placeholders) -> Any:
    for choice in getattr(response, "choices", None) or []:
        message = getattr(choice, "message", None)
        if message is None:
            continue
        if isinstance(message.content, str):
            message.content = placeholders.refill(message.content)
        for tool_call in getattr(message, "tool_calls", None) or []:
            function = getattr(tool_call, "function", None)
            if function is not None and isinstance(function.arguments, str):
                function.arguments = placeholders.refill(function.arguments)
    return response


class _ChunkRefiller:
    """Per-choice stream re-filling; the held tail is released on the choice's last chunk."""

    def __init__(self, placeholders: Placeholders,
                 on_usage: Callable[[Any], None] | None = None) -> None:
        self.placeholders = placeholders
        self._by_choice: dict[int, StreamRefiller] = {}
        self._on_usage = on_usage

    def chunk(self, chunk: Any) -> Any:
        usage = getattr(chunk, "usage", None)
        if usage is not None and self._on_usage is not None:
            self._on_usage(usage)  # the last chunk with stream_options.include_usage
        for choice in getattr(chunk, "choices", None) or []:
            refiller = self._by_choice.setdefault(choice.index, StreamRefiller(self.placeholders))
            delta = choice.delta
            text = refiller.feed(delta.content) if isinstance(delta.content, str) else None
            if choice.finish_reason is not None:
                text = (text or "") + refiller.flush()
            if text is not None:
                delta.content = text
            for tool_call in getattr(delta, "tool_calls", None) or []:
                function = getattr(tool_call, "function", None)
                if function is not None and isinstance(function.arguments, str):
                    function.arguments = self.placeholders.refill(function.arguments)
        return chunk


class _GuardedStream:
    def __init__(self, stream: Any, refill: _ChunkRefiller) -> None:
        self._stream = stream
        self._refill = refill

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._stream:
            yield self._refill.chunk(chunk)

    def __enter__(self) -> _GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _AsyncGuardedStream(_GuardedStream):
    async def __aiter__(self) -> AsyncIterator[Any]:  # type: ignore[override]
        async for chunk in self._stream:
            yield self._refill.chunk(chunk)

    async def __aenter__(self) -> _AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            await close()


class _Completions:
    def __init__(self, owner: GuardedClient) -> None:
        self._owner = owner

    def create(self, **kwargs: Any) -> Any:
        client, kwargs, call = self._owner.prepare_call(kwargs)
        if self._owner.is_async:
            return self._create_async(client, kwargs, call)
        token = context.attach(context.set_value(GUARD_ATTRIBUTES_KEY, call.span_attributes()))
        try:
            result = client.chat.completions.create(**kwargs)
        finally:
            context.detach(token)
        if kwargs.get("stream"):
            return _GuardedStream(result, self._refiller(call, kwargs))
        return self._finish(result, call, kwargs)

    async def _create_async(self, client: Any, kwargs: dict[str, Any], call: _Call) -> Any:
        # attached inside the coroutine: the instrumented call starts its span when awaited
        token = context.attach(context.set_value(GUARD_ATTRIBUTES_KEY, call.span_attributes()))
        try:
            result = await client.chat.completions.create(**kwargs)
        finally:
            context.detach(token)
        if kwargs.get("stream"):
            return _AsyncGuardedStream(result, self._refiller(call, kwargs))
        return self._finish(result, call, kwargs)

    def _finish(self, result: Any, call: _Call, kwargs: dict[str, Any]) -> Any:
        model = getattr(result, "model", None) or str(kwargs.get("model", ""))
        self._owner.guard.settle(call, model, getattr(result, "usage", None))
        return _refill_response(result, call.placeholders)

    def _refiller(self, call: _Call, kwargs: dict[str, Any]) -> _ChunkRefiller:
        def on_usage(usage: Any) -> None:
            self._owner.guard.settle(call, str(kwargs.get("model", "")), usage)
        return _ChunkRefiller(call.placeholders, on_usage)


    def __getattr__(self, name: str) -> Any:
        raise NotGuarded(f"chat.completions.{name}")


class _Chat:
    def __init__(self, owner: GuardedClient) -> None:
        self.completions = _Completions(owner)

    def __getattr__(self, name: str) -> Any:
        raise NotGuarded(f"chat.{name}")


class GuardedClient:
    """An ``OpenAI``/``AsyncOpenAI`` client whose chat completions are guarded."""

    def __init__(self, client: Any, guard: Guard) -> None:
        self._client = client
        self.guard = guard
        self._rerouted: dict[tuple[str, str | None], Any] = {}
        self.is_async = type(client).__name__.startswith("Async")
        self.chat = _Chat(self)

    def prepare_call(self, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], _Call]:
        messages, call = self.guard.prepare(kwargs.get("messages"), str(self._client.base_url))
        kwargs = {**kwargs, "messages": messages}
        route = call.route
        if route.decision == "refused":
            raise self.guard.refuse(call, str(kwargs.get("model", "")))
        client = self._client
        if route.decision == "rerouted":
            client = self._client_for(route)
            if route.model:
                kwargs["model"] = route.model
        self.guard.admit(call, str(kwargs.get("model", "")))
        return client, kwargs, call

    def _client_for(self, route: RouteDecision) -> Any:
        key = (route.endpoint, route.api_key_env)
        client = self._rerouted.get(key)
        if client is None:
            options: dict[str, Any] = {"base_url": route.endpoint}
            if route.api_key_env:
                options["api_key"] = os.environ.get(route.api_key_env, "")
            client = self._rerouted[key] = self._client.with_options(**options)
        return client

    def with_options(self, **options: Any) -> GuardedClient:
        """A guarded copy of the client with other options (``openai`` semantics)."""
        return GuardedClient(self._client.with_options(**options), self.guard)

    copy = with_options

    def __enter__(self) -> GuardedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    def __getattr__(self, name: str) -> Any:
        if name in _PASS_THROUGH:
            return getattr(self._client, name)
        raise NotGuarded(name)


def guard(client: Any, *, policies: PolicySet | None = None,
          engine: RedactionEngine | None = None,
          tracer_provider: TracerProvider | None = None,
          limits: LimitSettings | Limiter | None = None) -> GuardedClient:
    """Wrap an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client (loads the model now).
    ``tracer_provider`` receives the record of a refused call (default: the global one);
    ``limits`` are the rate limits and budgets (default: ``load_limits()``, none unless
    configured)."""
    return GuardedClient(client, Guard(policies, engine, tracer_provider, limits))


def guard_callable(fn: Callable[..., str], *, endpoint: str = "local:callable",
                   policies: PolicySet | None = None,
                   engine: RedactionEngine | None = None,
                   tracer_provider: TracerProvider | None = None,
                   limits: LimitSettings | Limiter | None = None) -> Callable[..., str]:
    """Wrap ``fn(messages, **kwargs) -> str``: ``fn`` sees redacted messages, the caller
    gets the re-filled answer. Region rules apply to ``endpoint``; rate limits count the
    estimated tokens only (``fn`` reports no usage)."""
    shared = Guard(policies, engine, tracer_provider, limits)

    def guarded(messages: list[Mapping[str, Any]], **kwargs: Any) -> str:
        redacted, call = shared.prepare(messages, endpoint)
        if call.route.decision == "refused":
            raise shared.refuse(call, str(kwargs.get("model", "")))
        shared.admit(call, str(kwargs.get("model", "")))
        token = context.attach(context.set_value(GUARD_ATTRIBUTES_KEY, call.span_attributes()))
        try:
            answer = fn(redacted, **kwargs)
        finally:
            context.detach(token)
        return call.placeholders.refill(answer)

    return guarded
