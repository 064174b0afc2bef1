"""The CRD rules issue 10 added, as the real API server enforces them (no operator needed).

The orchestrator's replica limit (one writer of the approval store), the immutable
storage claim, and what `kubectl apply` does with a twin stored before the limit
existed: the API server ratchets an unchanged invalid value, so re-applying the
same manifest works and only a change of the field must obey the rule.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from phoenix_operator.render import quantity
from tests.e2e.kube import KubeCluster
from tests.e2e.operator_process import CRD, install_crd, twin

REPLICAS_MESSAGE = "orchestrator.replicas must be 0 or 1: pending approvals are one SQLite file"


@pytest.fixture(scope="module")
def crd(kube_cluster: KubeCluster) -> None:
    install_crd(kube_cluster)


def apply(kube: KubeCluster, body: dict[str, Any]) -> tuple[int, str]:
    result = kube.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body), check=False)
    return result.returncode, result.stdout + result.stderr


def test_more_than_one_orchestrator_is_refused_with_the_reason(
    kube_cluster: KubeCluster, namespace: str, crd: None
) -> None:
    code, out = apply(kube_cluster, twin("t1", namespace, {"orchestrator": {"replicas": 2}}))
    assert code != 0
    assert REPLICAS_MESSAGE in out
    for replicas in (0, 1):
        code, out = apply(
            kube_cluster, twin(f"t{replicas}x", namespace, {"orchestrator": {"replicas": replicas}})
        )
        assert code == 0, out


def test_the_storage_claim_has_defaults_and_cannot_change(
    kube_cluster: KubeCluster, namespace: str, crd: None
) -> None:
    code, out = apply(kube_cluster, twin("store", namespace))
    assert code == 0, out
    stored = kube_cluster.get("ptwin", "store", "-n", namespace)
    assert stored["spec"]["orchestrator"]["storage"] == {"size": "1Gi"}
    code, out = apply(
        kube_cluster, twin("store", namespace, {"orchestrator": {"storage": {"size": "5Gi"}}})
    )
    assert code != 0
    assert "orchestrator.storage is immutable" in out
    code, out = apply(
        kube_cluster, twin("bad", namespace, {"orchestrator": {"storage": {"size": "lots"}}})
    )
    assert code != 0
    assert "spec.orchestrator.storage.size" in out


@pytest.fixture
def crd_without_the_replica_rule(kube_cluster: KubeCluster) -> Iterator[None]:
    """The CRD as it was before the rule (0..20), restored to the real one afterwards."""
    old = yaml.safe_load(CRD.read_text())
    version = old["spec"]["versions"][0]
    orchestrator = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "orchestrator"
    ]
    replicas = copy.deepcopy(orchestrator["properties"]["replicas"])
    replicas.pop("x-kubernetes-validations")
    replicas["maximum"] = 20
    orchestrator["properties"]["replicas"] = replicas
    kube_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(old)
    )
    try:
        yield
    finally:
        install_crd(kube_cluster)


def test_a_twin_stored_before_the_rule_still_applies_unchanged_but_cannot_grow(
    kube_cluster: KubeCluster, namespace: str, crd_without_the_replica_rule: None
) -> None:
    legacy = twin("legacy", namespace, {"orchestrator": {"replicas": 3}})
    code, out = apply(kube_cluster, legacy)
    assert code == 0, out
    install_crd(kube_cluster)  # the operator upgrade brings the rule
    code, out = apply(kube_cluster, legacy)  # GitOps re-applies the same manifest
    assert code == 0, f"an unchanged stored value must be ratcheted: {out}"
    other_change = twin(
        "legacy", namespace, {"orchestrator": {"replicas": 3}, "llm": {"model": "m/x"}}
    )
    code, out = apply(kube_cluster, other_change)
    assert code == 0, out
    for replicas in (2, 4):
        changed = twin("legacy", namespace, {"orchestrator": {"replicas": replicas}})
        code, out = apply(kube_cluster, changed)
        assert code != 0, replicas
        assert REPLICAS_MESSAGE in out
    code, out = apply(kube_cluster, twin("legacy", namespace, {"orchestrator": {"replicas": 1}}))
    assert code == 0, out


def test_the_renderer_spells_quantities_as_the_api_server_stores_them(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """render.quantity.canonical against the API server's own canonical form (a dry run)."""
    spelled = ["1Gi", "1024Mi", "1536Mi", "0.5Gi", "0.5Ki", "0.5", "1000m", "2000", "1.5G", "0.3Ki"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "quantities", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": f"c{i}",
                    "image": "example.invalid/none",
                    "resources": {"requests": {"memory": q}},
                }
                for i, q in enumerate(spelled)
            ]
        },
    }
    result = kube_cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(pod)
    )
    stored = [
        c["resources"]["requests"]["memory"]
        for c in json.loads(result.stdout)["spec"]["containers"]
    ]
    assert [quantity.canonical(q) for q in spelled] == stored
