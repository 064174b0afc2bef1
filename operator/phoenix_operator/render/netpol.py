"""NetworkPolicies of a twin (spec.networkPolicy: Managed).

Default deny for every pod of the twin, then one policy per component:
the gateway accepts traffic from anywhere on its port, the orchestrator only
from the gateway, tools only from the orchestrator, memory from the
orchestrator and from tools (the vector_query tool). Egress is DNS plus each
component's upstreams: gateway to the orchestrator; orchestrator to memory,
tools and the LLM endpoint; tools to memory; memory to Qdrant (and to
``memory.embedding.url`` when remote). The telemetry sidecar shares the
gateway's pod and is dialled over loopback, which NetworkPolicy does not see.

NetworkPolicy matches IPs, not host names: an external LLM or Qdrant endpoint
is allowed by port to any public address (RFC 1918, link-local and CGNAT ranges
excluded), and an in-cluster one (``*.svc`` / ``*.svc.cluster.local``, or a
bare Service name of the twin's namespace) by port to pods of that namespace.
"""

from __future__ import annotations

import ipaddress
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


def _to_component(twin: Twin, component: Component) -> dict[str, Any]:
    """Egress to a sibling's pods on the port its Service targets."""
    return {"to": [_from_component(twin, component)], "ports": _tcp(naming.PORTS[component])}


# Who calls whom inside a twin (caller -> callees); ingress and egress both follow from it.
CALLS: dict[Component, tuple[Component, ...]] = {
    "gateway": ("orchestrator",),
    "orchestrator": ("memory", "tools"),
    "memory": (),
    "tools": ("memory",),
}


def callers(component: Component) -> list[Component]:
    return [caller for caller, callees in CALLS.items() if component in callees]


def endpoint_egress(url: str, namespace: str, default_port: int | None = None) -> dict[str, Any]:
    """An egress rule for a URL's host and port, as precisely as NetworkPolicy allows.

    ``default_port`` is the client's port when the URL names none (Qdrant's gRPC
    6334); without it the scheme's (80, 443). A single-label host is a Service of
    the twin's own ``namespace``; ``host.<ns>.svc[.cluster.local]`` one of ``<ns>``.
    """
    parts = urlsplit(url)
    port = parts.port or default_port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    labels = host.split(".")
    in_cluster = None
    if len(labels) >= 3 and labels[2] == "svc":
        in_cluster = labels[1]
    elif len(labels) == 1 and host and ":" not in host:
        in_cluster = namespace
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:  # an IP literal: exactly that address, private or not
        peer: dict[str, Any] = {"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}
    elif in_cluster is not None:
        peer = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: in_cluster}}}
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
    else:
        peers = [_from_component(twin, caller) for caller in callers(component)]
        ingress = [{"from": peers, "ports": _tcp(port)}]
    egress = [_to_component(twin, callee) for callee in CALLS[component]]
    if component == "gateway":
        if twin.spec.gateway.telemetry_url:
            egress.append(endpoint_egress(twin.spec.gateway.telemetry_url, twin.namespace))
        if twin.spec.gateway.auth.jwt is not None:
            egress.append(endpoint_egress(twin.spec.gateway.auth.jwt.jwks_url, twin.namespace))
    elif component == "orchestrator":
        if twin.spec.llm.url:
            egress.append(endpoint_egress(twin.spec.llm.url, twin.namespace))
    elif component == "memory":
        egress.append(endpoint_egress(qdrant_url(twin, ctx), twin.namespace, 6334))
        embedding = twin.spec.memory.embedding
        if embedding.provider == "openai" and embedding.url:
            egress.append(endpoint_egress(embedding.url, twin.namespace))
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
