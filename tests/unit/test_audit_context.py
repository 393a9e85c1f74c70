from __future__ import annotations

import asyncio

import pytest
from opentelemetry import baggage

from genai_audit.instrumentation import audit_context, current_audit_context


def test_context_manager_sets_and_restores_baggage():
    with audit_context(tenant_id="acme", user_id="u1", tool_name="hr"):
        assert current_audit_context() == {"tenant.id": "acme", "enduser.id": "u1",
                                           "genai_audit.tool": "hr"}
        with audit_context(tool_name="contract_review", region="eu"):
            inner = current_audit_context()
            assert inner["tenant.id"] == "acme" and inner["genai_audit.tool"] == "contract_review"
            assert inner["genai_audit.region"] == "eu"
        assert current_audit_context()["genai_audit.tool"] == "hr"
    assert current_audit_context() == {}
    assert baggage.get_all() == {}


def test_decorator_sync_and_async():
    @audit_context(tenant_id="acme", feature_name="f")
    def sync() -> dict[str, str]:
        return current_audit_context()

    @audit_context(tenant_id="globex", data_class="phi")
    async def coro() -> dict[str, str]:
        await asyncio.sleep(0)
        return current_audit_context()

    assert sync() == {"tenant.id": "acme", "genai_audit.feature": "f"}
    assert asyncio.run(coro()) == {"tenant.id": "globex", "genai_audit.data_class": "phi"}
    assert current_audit_context() == {}


def test_non_string_values_are_rejected():
    with pytest.raises(TypeError, match="user_id must be a str"):
        audit_context(user_id=42)  # type: ignore[arg-type]
