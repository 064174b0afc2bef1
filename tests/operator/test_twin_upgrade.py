"""Upgrading twins rendered by an older operator: the orchestrator Deployment becomes a StatefulSet,
a stored twin breaking a newer CRD rule still converges, and the session key is generated once.

The reconciler runs against the in-memory API server and index of fakes.py.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from phoenix_operator.reconcile.twins import Reconciler
from tests.operator.fakes import FakeKube, FakeView
from tests.operator.test_reconcile import make_reconciler, twin_body

KEY = ("team-a", "alice")


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def view() -> FakeView:
    return FakeView()


@pytest.fixture
def reconciler(kube: FakeKube, view: FakeView, tmp_path: Path) -> Reconciler:
    return make_reconciler(kube, view, tmp_path)


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
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    old = old_orchestrator_deployment()
    kube.objects[("Deployment", "team-a", "alice-orchestrator")] = old
    view.twins[KEY] = twin_body()
    view.deliver(kube)  # the child index has listed the old Deployment
    await reconciler.reconcile(KEY, "resume")
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
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body({"orchestrator": {"replicas": 3}})
    await reconciler.reconcile(KEY, "resume")
    sts = kube.objects[("StatefulSet", "team-a", "alice-orchestrator")]
    assert sts["spec"]["replicas"] == 1
    assert ("PodDisruptionBudget", "team-a", "alice-orchestrator") not in kube.objects
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "UnsupportedSpec")
    assert "spec.orchestrator.replicas is 3" in degraded["message"]
    # Fixed by the user: the problem clears.
    view.twins[KEY] = twin_body({"orchestrator": {"replicas": 1}}, generation=2)
    view.deliver(kube)
    await reconciler.reconcile(KEY, "update")
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert degraded["status"] == "False"


async def test_the_session_key_is_generated_once_and_read_back_after_a_restart(
    kube: FakeKube, view: FakeView, reconciler: Reconciler, tmp_path: Path
) -> None:
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")
    secret = kube.objects[("Secret", "team-a", "alice-gateway-session")]
    key = base64.b64decode(secret["data"]["session-key"])
    assert len(key) >= 32
    view.twins[KEY] = twin_body({"llm": {"model": "other"}}, generation=2)
    await reconciler.reconcile(KEY, "update")
    # A restarted operator whose index has not delivered the Secret yet asks the API for it.
    restarted_view = FakeView()
    restarted = make_reconciler(kube, restarted_view, tmp_path)
    restarted_view.twins[KEY] = twin_body({"llm": {"model": "third"}}, generation=3)
    await restarted.reconcile(KEY, "update")
    secret = kube.objects[("Secret", "team-a", "alice-gateway-session")]
    assert base64.b64decode(secret["data"]["session-key"]) == key
    configmap = kube.objects[("ConfigMap", "team-a", "alice-gateway-env")]
    assert key.decode() not in str(configmap)
