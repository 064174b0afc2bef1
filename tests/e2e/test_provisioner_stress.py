"""The test cluster's volume provisioner (localcluster/volumes.py) under build-like load.

It follows claims and volumes with two watch threads beside a periodic full pass, so a
burst of claims under CPU, fork and IO pressure must still end with every claim bound to a
volume on its Pod's node, exactly one volume per claim, and, once the claims are deleted,
no volume and no directory left behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kube import KubeCluster, wait_for
from tests.stress.load import BuildLoad

pytestmark = [pytest.mark.stress, pytest.mark.timeout(900)]
CLAIMS = int(os.environ.get("PHOENIX_STRESS_CLAIMS", "24"))


@pytest.fixture
def build_load() -> Iterator[BuildLoad]:
    with BuildLoad() as load:
        yield load


def claim_and_pod(i: int, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"state-{i}", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"claimant-{i}", "namespace": namespace},
        "spec": {
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
            "volumes": [{"name": "state", "persistentVolumeClaim": {"claimName": f"state-{i}"}}],
        },
    }
    return claim, pod


def test_a_burst_of_claims_under_load_binds_each_once_and_leaves_nothing_behind(
    kube_cluster: KubeCluster, namespace: str, build_load: BuildLoad
) -> None:
    if kube_cluster.workdir is None:
        pytest.skip("the provisioner under test is the local cluster's")
    root = Path(kube_cluster.workdir) / "volumes"
    objects = [obj for i in range(CLAIMS) for obj in claim_and_pod(i, namespace)]
    kube_cluster.apply(*objects)

    def bound() -> int:
        claims = kube_cluster.get("pvc", "-n", namespace)["items"]
        return sum(c.get("status", {}).get("phase") == "Bound" for c in claims)

    wait_for(lambda: bound() == CLAIMS, what=f"{CLAIMS} claims Bound under load", timeout=600)

    def scheduled() -> int:  # the scheduler binds a pod only after its claim is Bound
        pods = kube_cluster.get("pods", "-n", namespace)["items"]
        return sum(bool(p["spec"].get("nodeName")) for p in pods)

    wait_for(lambda: scheduled() == CLAIMS, what=f"{CLAIMS} claimants scheduled", timeout=600)
    claims = {c["metadata"]["name"]: c for c in kube_cluster.get("pvc", "-n", namespace)["items"]}
    pods = {p["metadata"]["name"]: p for p in kube_cluster.get("pods", "-n", namespace)["items"]}
    volumes = [
        v
        for v in kube_cluster.get("pv")["items"]
        if (v["spec"].get("claimRef") or {}).get("namespace") == namespace
    ]
    assert len(volumes) == CLAIMS  # one volume per claim, none provisioned twice
    for volume in volumes:
        claim = claims[volume["spec"]["claimRef"]["name"]]
        assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
        pod = pods[claim["metadata"]["name"].replace("state-", "claimant-")]
        (term,) = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert term["matchExpressions"][0]["values"] == [pod["spec"]["nodeName"]]
        assert Path(volume["spec"]["local"]["path"]).is_dir()
        assert Path(volume["spec"]["local"]["path"]).parent == root.resolve()

    kube_cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=true", timeout=300)
    kube_cluster.kubectl("delete", "pvc", "--all", "-n", namespace, "--wait=true", timeout=300)
    names = {v["metadata"]["name"] for v in volumes}

    def left() -> set[str]:
        return names & {v["metadata"]["name"] for v in kube_cluster.get("pv")["items"]}

    wait_for(lambda: not left(), what="every released volume deleted", timeout=300)
    assert not [p for v in volumes if (p := Path(v["spec"]["local"]["path"])).exists()]
