"""The error a refused call raises: ``openai.RateLimitError`` (HTTP 429), so code that
already handles the provider's rate limits (retries, back-off, user messages) handles ours.

It names the tenant and the limit, never the call's content."""

from __future__ import annotations

import math

import httpx2 as httpx  # the HTTP package this openai client is built on
import openai

RATE_LIMITED = "rate_limited"
BUDGET_EXCEEDED = "budget_exceeded"
LIMITER_UNAVAILABLE = "limiter_unavailable"


class LimitExceeded(openai.RateLimitError):
    """A call refused by the guard's rate limit or budget; it never reached the provider."""

    def __init__(self, tenant: str, reason: str, detail: str, retry_after: float | None,
                 endpoint: str = "http://genai-audit.guard/") -> None:
        self.tenant, self.reason, self.retry_after = tenant, reason, retry_after
        headers = {}
        if retry_after is not None and math.isfinite(retry_after):
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        message = (f"Budget exceeded for tenant {tenant!r}: {detail}" if reason == BUDGET_EXCEEDED
                   else f"Rate limit exceeded for tenant {tenant!r}: {detail}")
        request = httpx.Request("POST", endpoint.rstrip("/") + "/chat/completions")
        response = httpx.Response(429, request=request, headers=headers)
        super().__init__(message, response=response,
                         body={"error": {"message": message, "type": reason, "code": reason}})
