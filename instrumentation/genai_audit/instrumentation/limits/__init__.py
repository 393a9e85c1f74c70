"""Rate limits and budgets in the pre-LLM guard (see docs/limits.md).

``settings`` reads the ``[limits]`` table, ``backends`` keeps the buckets and the spend (in
process, or shared through Redis), ``limiter`` decides per call and ``errors`` holds the
refusal the caller sees.
"""

from __future__ import annotations

from genai_audit.instrumentation.limits.errors import LimitExceeded
from genai_audit.instrumentation.limits.limiter import Limiter
from genai_audit.instrumentation.limits.settings import LimitSettings, load_limits

__all__ = ["LimitExceeded", "LimitSettings", "Limiter", "load_limits"]
