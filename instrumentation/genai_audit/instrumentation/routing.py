"""Region routing for the pre-LLM guard: may this user's data go to this endpoint?

The user's region comes from ``audit_context(region=...)`` (baggage ``genai_audit.region``).
A ``[redaction.regions.<REGION>]`` rule lists the endpoints that region's data may reach;
a call bound elsewhere is rerouted to ``reroute_to`` (with ``model`` if given) or, with no
``reroute_to``, refused. A region without a rule, or a call without a region, is
``unrestricted``.

What lands on the record (``genai_audit.route.decision`` span attribute -> flags):

=============  ==========================================  ======================  =====
decision       meaning                                     flag                    hipaa
=============  ==========================================  ======================  =====
allowed        endpoint is in the region's list            -                       true
rerouted       sent to the region's ``reroute_to``         ``route_rerouted``      true
refused        not sent at all; the caller got an error    ``route_refused``       true
unrestricted   no rule for the region (or no region)       -                       true
=============  ==========================================  ======================  =====

``hipaa_compliant_route`` is true on a guarded call: its prompt was redacted before it left
the process and nothing went to an endpoint its region's rule forbids. Calls made without
the guard carry false: nobody checked the route.
"""

from __future__ import annotations

from dataclasses import dataclass

from genai_audit.processor.redaction.policy import PolicySet


class RouteRefused(PermissionError):
    """The user's region may not send data to this endpoint and no reroute is configured."""


@dataclass(frozen=True)
class RouteDecision:
    decision: str  # allowed | rerouted | refused | unrestricted
    endpoint: str  # where the call goes (or would have gone, if refused)
    model: str | None = None  # model to use at a rerouted endpoint
    api_key_env: str | None = None

    @property
    def compliant(self) -> bool:
        return True  # see the module doc: every guard decision keeps the data where allowed


def normalize_endpoint(url: str) -> str:
    return url.strip().rstrip("/")


def decide(policies: PolicySet, region: str, endpoint: str) -> RouteDecision:
    endpoint = normalize_endpoint(endpoint)
    rule = policies.region(region) if region else None
    if rule is None:
        return RouteDecision("unrestricted", endpoint)
    if endpoint in rule.allowed_endpoints:
        return RouteDecision("allowed", endpoint)
    if rule.reroute_to is not None:
        return RouteDecision("rerouted", rule.reroute_to, rule.model, rule.api_key_env)
    return RouteDecision("refused", endpoint)
