"""A process sharing one Redis-backed limit (kept apart from the test modules so a spawned
process imports the limiter only)."""

from __future__ import annotations

from typing import Any

from genai_audit.instrumentation.limits import Limiter, load_limits
from genai_audit.instrumentation.limits.limiter import Admission


def hammer(url: str, limit: int, attempts: int, barrier: Any, results: Any) -> None:
    """Try ``attempts`` calls once every process is ready; report how many were admitted."""
    limiter = Limiter(load_limits(env={}, overrides={
        "redis_url": url, "requests": limit, "interval_s": 3600, "redis_timeout_ms": 2000}))
    barrier.wait(60)
    admitted = sum(isinstance(limiter.admit("acme", "triage", None, 5), Admission)
                   for _ in range(attempts))
    results.put(admitted)
    limiter.close()
