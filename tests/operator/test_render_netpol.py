"""NetworkPolicies: default deny, then exactly the paths the twin needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from phoenix_operator import naming
from phoenix_operator.api import Component, Twin
from phoenix_operator.render import RenderContext, netpol


def by_component(policies: list[dict[str, Any]], component: Component) -> dict[str, Any]:
    selector = {"phoenixtwin.io/twin": "alice", naming.COMPONENT_LABEL: component}
    return next(p for p in policies if p["spec"]["podSelector"]["matchLabels"] == selector)


def ingress_peers(policy: dict[str, Any]) -> list[Any]:
    return [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]


def test_every_pod_of_the_twin_is_denied_by_default(twin: Twin, ctx: RenderContext) -> None:
    deny = netpol.network_policies(twin, ctx)[0]
    assert deny["metadata"]["name"] == "alice-default-deny"
    assert deny["spec"] == {
        "podSelector": {"matchLabels": {"phoenixtwin.io/twin": "alice"}},
        "policyTypes": ["Ingress", "Egress"],
    }


def test_the_gateway_accepts_traffic_from_anywhere_on_its_port(
    twin: Twin, ctx: RenderContext
) -> None:
    policy = by_component(netpol.network_policies(twin, ctx), "gateway")
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8181, "protocol": "TCP"}]}]


def test_the_orchestrator_accepts_traffic_only_from_the_gateway(
    twin: Twin, ctx: RenderContext
) -> None:
    policy = by_component(netpol.network_policies(twin, ctx), "orchestrator")
    assert ingress_peers(policy) == [
        {"podSelector": {"matchLabels": naming.selector(twin, "gateway")}}
    ]


def test_tools_accept_traffic_only_from_the_orchestrator_and_memory_also_from_tools(
    twin: Twin, ctx: RenderContext
) -> None:
    policies = netpol.network_policies(twin, ctx)
    assert by_component(policies, "tools")["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": naming.selector(twin, "orchestrator")}}],
            "ports": [{"port": 50054, "protocol": "TCP"}],
        }
    ]
    assert by_component(policies, "memory")["spec"]["ingress"] == [
        {
            "from": [
                {"podSelector": {"matchLabels": naming.selector(twin, "orchestrator")}},
                {"podSelector": {"matchLabels": naming.selector(twin, "tools")}},
            ],
            "ports": [{"port": 50052, "protocol": "TCP"}],
        }
    ]


def test_egress_is_dns_plus_each_components_upstreams(
    twin_factory: Callable[..., Twin], ctx: RenderContext
) -> None:
    twin = twin_factory(
        {"llm": {"provider": "openrouter", "apiKeySecretRef": {"name": "k", "key": "k"}}}
    )
    policies = netpol.network_policies(twin, ctx)
    memory = by_component(policies, "memory")["spec"]["egress"]
    assert memory == [
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}],
            "ports": [{"port": 6334, "protocol": "TCP"}],
        },
        netpol.DNS_EGRESS,
    ]
    orchestrator = by_component(policies, "orchestrator")["spec"]["egress"]
    assert orchestrator[-2] == {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": netpol.PRIVATE_RANGES}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }
    # vector_query: tools dial memory.
    assert by_component(policies, "tools")["spec"]["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": naming.selector(twin, "memory")}}],
            "ports": [{"port": 50052, "protocol": "TCP"}],
        },
        netpol.DNS_EGRESS,
    ]


@pytest.mark.parametrize(
    ("url", "peer", "port"),
    [
        (
            "https://emb.example/v1/embeddings",
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": netpol.PRIVATE_RANGES}},
            443,
        ),
        (
            "http://embedder.ml.svc.cluster.local:8080/v1/embeddings",
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ml"}}},
            8080,
        ),
        (
            "http://embedder/v1/embeddings",
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}},
            80,
        ),
        ("http://10.1.2.3:9000/v1/embeddings", {"ipBlock": {"cidr": "10.1.2.3/32"}}, 9000),
    ],
)
def test_memory_egress_follows_the_embedding_url(
    twin_factory: Callable[..., Twin], ctx: RenderContext, url: str, peer: Any, port: int
) -> None:
    twin = twin_factory(
        {
            "memory": {
                "embedding": {
                    "provider": "openai",
                    "url": url,
                    "apiKeySecretRef": {"name": "emb", "key": "key"},
                }
            }
        }
    )
    egress = by_component(netpol.network_policies(twin, ctx), "memory")["spec"]["egress"]
    assert egress[1] == {"to": [peer], "ports": [{"port": port, "protocol": "TCP"}]}
    assert len(egress) == 3  # Qdrant, the embedder, DNS: no other public host


def test_unmanaged_means_no_policy(twin_factory: Callable[..., Twin], ctx: RenderContext) -> None:
    assert netpol.network_policies(twin_factory({"networkPolicy": "Unmanaged"}), ctx) == []
