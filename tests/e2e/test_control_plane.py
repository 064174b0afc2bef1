"""Smoke tests: the control plane behaves like a real cluster for what the operator relies on."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tests.e2e.kube import KubeCluster, deployment, wait_for


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return str(cond["status"])
    return None


def test_a_deployment_becomes_available(kube_cluster: KubeCluster, namespace: str) -> None:
    kube_cluster.apply(deployment("web", namespace, replicas=2))

    def available() -> bool:
        dep = kube_cluster.get("deployment", "web", "-n", namespace)
        return _condition(dep, "Available") == "True" and dep["status"].get("readyReplicas") == 2

    wait_for(available, what="Deployment web to be Available with 2 ready replicas")
    pods = kube_cluster.get("pods", "-n", namespace, "-l", "app=web")["items"]
    assert len(pods) == 2
    assert {pod["status"]["phase"] for pod in pods} == {"Running"}
    if kube_cluster.local and kube_cluster.node == "kwok":
        # The real scheduler bound them to the kwok node, and kwok marked them Running.
        assert {pod["spec"]["nodeName"] for pod in pods} == {"kwok-node-0"}


def test_deleting_an_owner_garbage_collects_its_child(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    kube_cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner = kube_cluster.get("configmap", "owner", "-n", namespace)
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "data": {"k": "v"},
    }
    kube_cluster.apply(child)
    assert kube_cluster.get("configmap", "child", "-n", namespace)["data"] == {"k": "v"}

    kube_cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    wait_for(
        lambda: (
            kube_cluster.kubectl(
                "get", "configmap", "child", "-n", namespace, check=False
            ).returncode
            != 0
        ),
        what="the garbage collector to delete the owned ConfigMap",
    )
    gone = kube_cluster.kubectl("get", "configmap", "child", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr


def test_a_namespace_with_running_pods_is_deleted_completely(kube_cluster: KubeCluster) -> None:
    name = f"e2e-ns-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            kube_cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0
        ),
        what="the namespace's default ServiceAccount",
    )
    kube_cluster.apply(deployment("doomed", name, replicas=1))
    wait_for(
        lambda: (
            _condition(kube_cluster.get("deployment", "doomed", "-n", name), "Available") == "True"
        ),
        what="Deployment doomed to be Available",
    )

    # --wait blocks until the namespace controller and kwok's pod-delete stage finish.
    kube_cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=90s", timeout=120)

    result = kube_cluster.kubectl("get", "namespace", name, check=False)
    assert result.returncode != 0
    assert "NotFound" in result.stderr


CEL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.phoenixtwin.io"},
    "spec": {
        "group": "smoke.phoenixtwin.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "spec.min must not exceed spec.max",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_a_cel_rule_rejects_a_bad_object_with_its_message(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    kube_cluster.apply(CEL_CRD)
    kube_cluster.wait_established("widgets.smoke.phoenixtwin.io")

    def widget(name: str, low: int, high: int) -> str:
        return json.dumps(
            {
                "apiVersion": "smoke.phoenixtwin.io/v1",
                "kind": "Widget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"min": low, "max": high},
            }
        )

    bad = kube_cluster.kubectl("create", "-f", "-", stdin=widget("bad", 5, 1), check=False)
    assert bad.returncode != 0
    assert "spec.min must not exceed spec.max" in bad.stderr
    assert "Invalid value" in bad.stderr

    good = kube_cluster.kubectl("create", "-f", "-", stdin=widget("good", 1, 5), check=False)
    assert good.returncode == 0, good.stderr
    assert kube_cluster.get("widget", "good", "-n", namespace)["spec"] == {"min": 1, "max": 5}


def test_kubectl_reports_the_real_server_version_and_a_ready_node(
    kube_cluster: KubeCluster,
) -> None:
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    server = version["serverVersion"]
    assert re.fullmatch(r"v1\.\d+\.\d+.*", server["gitVersion"])
    if kube_cluster.local:
        # The build stamps the version into the binaries (see scripts/build-control-plane.sh).
        assert server["gitVersion"].startswith("v1.34.")
        assert server["gitTreeState"] == "clean"
    nodes = kube_cluster.get("nodes")["items"]
    assert any(_condition(node, "Ready") == "True" for node in nodes)
    readyz = kube_cluster.kubectl("get", "--raw=/readyz?verbose")
    assert "readyz check passed" in readyz.stdout


def test_a_claim_without_a_class_binds_through_the_default_one(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """A twin's orchestrator StatefulSet claims storage without naming a class.

    The claim binds once a Pod uses it (the local class binds on first use, as kind's and
    most local-volume classes do), and its volume is pinned to the node of that Pod.
    """
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "state", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "claimant", "namespace": namespace},
        "spec": {
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
            "volumes": [{"name": "state", "persistentVolumeClaim": {"claimName": "state"}}],
        },
    }
    kube_cluster.apply(claim, pod)
    wait_for(
        lambda: kube_cluster.get("pvc", "state", "-n", namespace)["status"].get("phase") == "Bound",
        what="PersistentVolumeClaim state to be Bound",
    )
    claim = kube_cluster.get("pvc", "state", "-n", namespace)
    volume = kube_cluster.get("pv", claim["spec"]["volumeName"])
    assert claim["spec"]["storageClassName"] == volume["spec"]["storageClassName"]
    assert volume["spec"]["capacity"]["storage"] == "1Gi"
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    if kube_cluster.local:
        wait_for(
            lambda: bool(
                kube_cluster.get("pod", "claimant", "-n", namespace)["spec"].get("nodeName")
            ),
            what="Pod claimant to be scheduled",
        )
        node = kube_cluster.get("pod", "claimant", "-n", namespace)["spec"]["nodeName"]
        (term,) = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert term["matchExpressions"][0]["values"] == [node]
    kube_cluster.kubectl("delete", "pod", "claimant", "-n", namespace, "--wait=true")
    kube_cluster.kubectl("delete", "pvc", "state", "-n", namespace)
    wait_for(
        lambda: (
            kube_cluster.kubectl("get", "pv", volume["metadata"]["name"], check=False).returncode
            != 0
        ),
        what="the released volume to be deleted (reclaimPolicy Delete)",
    )
