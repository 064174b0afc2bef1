"""Upgrading twins rendered by an older operator: the orchestrator Deployment becomes a StatefulSet,
a stored twin breaking a newer CRD rule still converges, and the session key is generated once.

The reconciler runs against the in-memory API server of test_reconcile.py.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from phoenix_operator.reconcile.cache import Cache
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.reconcile.twins import Reconciler
from phoenix_operator.render import RenderContext
from tests.operator.test_reconcile import FakeKube, twin_body

KEY = ("team-a", "alice")


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def reconciler(kube: FakeKube, tmp_path: Path) -> Reconciler:
    connector = QdrantConnector(default_url="http://unused:6334", local_path=tmp_path, timeout=5)
    return Reconciler(kube, connector, RenderContext(), Cache())  # type: ignore[arg-type]


def old_orchestrator_deployment() -> dict[str, object]:
    """What the previous operator applied for the orchestrator (owned, labelled like today)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "alice-orchestrator",
            "namespace": "team-a",
            "resourceVersion": "7",
            "labels": {
                "phoenixtwin.io/twin": "alice",
                "app.kubernetes.io/managed-by": "phoenix-operator",
                "app.kubernetes.io/component": "orchestrator",
            },
            "ownerReferences": [{"uid": "u-1", "controller": True}],
        },
        "spec": {"replicas": 1},
    }


async def test_the_old_orchestrator_deployment_is_replaced_not_orphaned(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    old = old_orchestrator_deployment()
    kube.objects[("Deployment", "team-a", "alice-orchestrator")] = old
    reconciler.cache.put_twin(twin_body())
    reconciler.cache.put_child(old)  # as the child watch delivers it
    await reconciler.reconcile(KEY, trigger="resume", qdrant=False)
    assert ("StatefulSet", "team-a", "alice-orchestrator") in kube.objects
    assert ("Deployment", "team-a", "alice-orchestrator") not in kube.objects
    assert ("delete", "Deployment", "alice-orchestrator") in kube.writes
    # The StatefulSet is applied before the Deployment goes, so the Service keeps a backend.
    order = [w for w in kube.writes if w[2] == "alice-orchestrator" and w[1] != "Service"]
    assert order[-2:] == [
        ("apply", "StatefulSet", "alice-orchestrator"),
        ("delete", "Deployment", "alice-orchestrator"),
    ]


async def test_a_stored_twin_with_three_orchestrators_runs_one_and_is_degraded(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    reconciler.cache.put_twin(twin_body({"orchestrator": {"replicas": 3}}))
    await reconciler.reconcile(KEY, trigger="resume", qdrant=False)
    sts = kube.objects[("StatefulSet", "team-a", "alice-orchestrator")]
    assert sts["spec"]["replicas"] == 1
    assert ("PodDisruptionBudget", "team-a", "alice-orchestrator") not in kube.objects
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "UnsupportedSpec")
    assert "spec.orchestrator.replicas is 3" in degraded["message"]
    # Fixed by the user: the problem clears.
    reconciler.cache.put_twin(twin_body({"orchestrator": {"replicas": 1}}, generation=2))
    await reconciler.reconcile(KEY, trigger="update", qdrant=False)
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert degraded["status"] == "False"


async def test_the_session_key_is_generated_once_and_read_back_after_a_restart(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    reconciler.cache.put_twin(twin_body())
    await reconciler.reconcile(KEY, trigger="create", qdrant=False)
    secret = kube.objects[("Secret", "team-a", "alice-gateway-session")]
    key = base64.b64decode(secret["data"]["session-key"])
    assert len(key) >= 32
    reconciler.cache.put_twin(twin_body({"llm": {"model": "other"}}, generation=2))
    await reconciler.reconcile(KEY, trigger="update", qdrant=False)
    restarted = Reconciler(kube, reconciler.qdrant, RenderContext(), Cache())  # type: ignore[arg-type]
    restarted.cache.put_twin(twin_body({"llm": {"model": "third"}}, generation=3))
    await restarted.reconcile(KEY, trigger="update", qdrant=False)
    secret = kube.objects[("Secret", "team-a", "alice-gateway-session")]
    assert base64.b64decode(secret["data"]["session-key"]) == key
    configmap = kube.objects[("ConfigMap", "team-a", "alice-gateway-env")]
    assert key.decode() not in str(configmap)
