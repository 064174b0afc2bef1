"""What the real node needs in the API: RBAC for its daemons, CoreDNS, and the images it runs."""

from __future__ import annotations

from typing import Any

from localcluster.state import Addresses

PAUSE_IMAGE = "phoenixtwin.local/pause:3.10.1"
COREDNS_IMAGE_REPO = "phoenixtwin.local/coredns"
KUBE_ROUTER_USER = "system:kube-router"

# No `forward`: the cluster has no upstream resolver and nothing may leave the node, so names
# outside cluster.local fail fast instead of timing out.
COREFILE = """\
.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    cache 30
    loop
    reload
    loadbalance
}
"""


def _read_rule(groups: list[str], resources: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": ["get", "list", "watch"]}


def _cluster_role(name: str, rules: list[dict[str, Any]], subject: dict[str, str]) -> list[Any]:
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [subject],
        },
    ]


def kube_router_rbac() -> list[dict[str, Any]]:
    """What kube-router's NetworkPolicy controller watches (its own daemonset manifests' role)."""
    return _cluster_role(
        "phoenixtwin:kube-router",
        [
            _read_rule([""], ["namespaces", "pods", "services", "nodes", "endpoints"]),
            _read_rule(["networking.k8s.io"], ["networkpolicies"]),
            _read_rule(["discovery.k8s.io"], ["endpointslices"]),
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBE_ROUTER_USER},
    )


def coredns(addresses: Addresses, image: str) -> list[dict[str, Any]]:
    """CoreDNS as upstream deploys it (coredns/deployment's manifest), one replica."""
    labels = {"k8s-app": "kube-dns"}
    meta = {"namespace": "kube-system"}
    probe_port = {"ready": 8181, "health": 8080}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        *_cluster_role(
            "system:coredns",
            [
                _read_rule([""], ["endpoints", "services", "pods", "namespaces"]),
                _read_rule(["discovery.k8s.io"], ["endpointslices"]),
            ],
            {"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"},
        ),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", **meta},
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "labels": labels, **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                    {"name": "metrics", "containerPort": 9153},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": probe_port["ready"]},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": probe_port["health"]},
                                    "initialDelaySeconds": 10,
                                    "failureThreshold": 5,
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "70Mi"},
                                    "limits": {"memory": "170Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True,
                                    "runAsUser": 65532,
                                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                                },
                                "volumeMounts": [
                                    {
                                        "name": "config",
                                        "mountPath": "/etc/coredns",
                                        "readOnly": True,
                                    }
                                ],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "labels": labels, **meta},
            "spec": {
                "selector": labels,
                "clusterIP": addresses.dns_service_ip,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    {"name": "metrics", "port": 9153, "protocol": "TCP"},
                ],
            },
        },
    ]
