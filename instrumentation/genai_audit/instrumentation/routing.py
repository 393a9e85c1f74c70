"""Region routing for the pre-LLM guard: may this user's data go to this endpoint?

The user's region comes from ``audit_context(region=...)`` (baggage ``genai_audit.region``).
A ``[redaction.regions.<REGION>]`` rule lists the endpoints that region's data may reach;
a call bound elsewhere is rerouted to ``reroute_to`` (with ``model`` if given) or, with no
``reroute_to``, refused. A region without a rule, or a call without a region, is
``unrestricted``.

What lands on the record (``genai_audit.route.decision`` span attribute -> flags):

=============  ==========================================  ======================
decision       meaning                                     flag
=============  ==========================================  ======================
allowed        endpoint is in the region's list            -
rerouted       sent to the region's ``reroute_to``         ``route_rerouted``
refused        not sent at all; the caller got an error    ``route_refused``
unrestricted   no rule for the region (or no region)       -
=============  ==========================================  ======================

``hipaa_compliant_route`` is a separate judgement: true only when the endpoint the call went
to is one the tenant declared covered by a business associate agreement
(``baa_endpoints`` in the redaction policy, per tenant or tool) or a model on this machine
(a loopback host: ``localhost``, ``127.0.0.0/8``, ``::1``). A refused call sent nothing, so
it is true too. An ``unrestricted`` call to any other endpoint is false, and so is every call
made without the guard: nobody checked the route.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from genai_audit.processor.redaction.policy import PolicySet


class RouteRefused(PermissionError):
    """The user's region may not send data to this endpoint and no reroute is configured."""


@dataclass(frozen=True)
class RouteDecision:
    decision: str  # allowed | rerouted | refused | unrestricted
    endpoint: str  # where the call goes (or would have gone, if refused)
    model: str | None = None  # model to use at a rerouted endpoint
    api_key_env: str | None = None
    compliant: bool = False  # hipaa_compliant_route (see the module doc)


def normalize_endpoint(url: str) -> str:
    return url.strip().rstrip("/")


def is_local(endpoint: str) -> bool:
    """Whether ``endpoint`` is served on this machine (a loopback host)."""
    host = (urlsplit(endpoint).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def covered(endpoint: str, baa_endpoints: Collection[str]) -> bool:
    """HIPAA route rule: a BAA-covered endpoint of the tenant, or a local model."""
    return normalize_endpoint(endpoint) in baa_endpoints or is_local(endpoint)


def decide(policies: PolicySet, region: str, endpoint: str,
           baa_endpoints: Collection[str] = ()) -> RouteDecision:
    endpoint = normalize_endpoint(endpoint)
    rule = policies.region(region) if region else None
    if rule is None:
        return RouteDecision("unrestricted", endpoint,
                             compliant=covered(endpoint, baa_endpoints))
    if endpoint in rule.allowed_endpoints:
        return RouteDecision("allowed", endpoint, compliant=covered(endpoint, baa_endpoints))
    if rule.reroute_to is not None:
        return RouteDecision("rerouted", rule.reroute_to, rule.model, rule.api_key_env,
                             compliant=covered(rule.reroute_to, baa_endpoints))
    return RouteDecision("refused", endpoint, compliant=True)  # nothing was sent
