"""NetworkPolicies of a twin (spec.networkPolicy: Managed).

Default deny for every pod of the twin, then one policy per component:
the gateway accepts traffic from anywhere on its port, the orchestrator only
from the gateway, memory and tools only from the orchestrator. Egress is DNS
plus each component's upstreams: orchestrator to memory, tools and the LLM
endpoint; memory to Qdrant (and the embedding API when remote).

NetworkPolicy matches IPs, not host names: an external LLM or Qdrant endpoint
is allowed by port to any public address (RFC 1918, link-local and CGNAT ranges
excluded), and an in-cluster one (``*.svc`` / ``*.svc.cluster.local``) by port
to pods of the namespace in its host name.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from phoenix_operator import naming
from phoenix_operator.api import Component, Twin
from phoenix_operator.render.common import Manifest, RenderContext, metadata
from phoenix_operator.render.config import qdrant_url

PRIVATE_RANGES = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

DNS_EGRESS: dict[str, Any] = {
    "to": [{"namespaceSelector": {}}],
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
}


def _tcp(port: int) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": "TCP"}]


def _from_component(twin: Twin, component: Component) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": naming.selector(twin, component)}}


def endpoint_egress(url: str, default_port: int) -> dict[str, Any]:
    """An egress rule for a URL's host and port, as precisely as NetworkPolicy allows."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else default_port)
    host = parts.hostname or ""
    labels = host.split(".")
    if len(labels) >= 3 and labels[2] == "svc":
        peer: dict[str, Any] = {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: labels[1]}}
        }
    else:
        peer = {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}
    return {"to": [peer], "ports": _tcp(port)}


def _policy(
    twin: Twin,
    name: str,
    pod_selector: dict[str, str],
    ingress: list[dict[str, Any]],
    egress: list[dict[str, Any]],
) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(twin, name),
        "spec": {
            "podSelector": {"matchLabels": pod_selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def _component_policy(twin: Twin, component: Component, ctx: RenderContext) -> Manifest:
    port = naming.PORTS[component]
    if component == "gateway":
        ingress: list[dict[str, Any]] = [{"ports": _tcp(port)}]
        egress = [
            {
                "to": [_from_component(twin, "orchestrator")],
                "ports": _tcp(naming.PORTS["orchestrator"]),
            }
        ]
        if twin.spec.gateway.telemetry_url:
            egress.append(endpoint_egress(twin.spec.gateway.telemetry_url, 80))
        if twin.spec.gateway.auth.jwt is not None:
            egress.append(endpoint_egress(twin.spec.gateway.auth.jwt.jwks_url, 443))
    elif component == "orchestrator":
        ingress = [{"from": [_from_component(twin, "gateway")], "ports": _tcp(port)}]
        egress = [
            {"to": [_from_component(twin, "memory")], "ports": _tcp(naming.PORTS["memory"])},
            {"to": [_from_component(twin, "tools")], "ports": _tcp(naming.PORTS["tools"])},
        ]
        if twin.spec.llm.url:
            egress.append(endpoint_egress(twin.spec.llm.url, 443))
    else:
        ingress = [{"from": [_from_component(twin, "orchestrator")], "ports": _tcp(port)}]
        egress = []
        if component == "memory":
            egress.append(endpoint_egress(qdrant_url(twin, ctx), 6334))
            if twin.spec.memory.embedding.provider == "openai":
                egress.append(endpoint_egress("https://api.openai.com", 443))
    return _policy(
        twin,
        naming.component_name(twin, component),
        naming.selector(twin, component),
        ingress,
        [*egress, DNS_EGRESS],
    )


def network_policies(twin: Twin, ctx: RenderContext) -> list[Manifest]:
    """The twin's policies, or none when spec.networkPolicy is Unmanaged."""
    if twin.spec.network_policy == "Unmanaged":
        return []
    deny = _policy(twin, naming.default_deny_policy(twin), {naming.TWIN_LABEL: twin.name}, [], [])
    deny["spec"].pop("ingress")
    deny["spec"].pop("egress")
    components: tuple[Component, ...] = ("gateway", "orchestrator", "memory", "tools")
    return [deny, *(_component_policy(twin, c, ctx) for c in components)]
