"""The reconciler against an in-memory API server: writes only what changed, never rotates keys."""

from __future__ import annotations

import base64
import copy
import itertools
from pathlib import Path
from typing import Any

import pytest

from phoenix_operator.reconcile.cache import Cache
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.reconcile.twins import Reconciler
from phoenix_operator.render import RenderContext


class FakeKube:
    """Stores applied objects like an API server would (resourceVersion, server fields)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self._revision = itertools.count(100)

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        key = (manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        self.writes.append(("apply", key[0], key[2]))
        stored = copy.deepcopy(manifest)
        stored["metadata"]["resourceVersion"] = str(next(self._revision))
        stored["metadata"]["managedFields"] = [{"manager": "phoenix-operator"}]
        if manifest["kind"] == "Service":
            stored["spec"]["clusterIP"] = "10.96.0.10"
        self.objects[key] = stored
        return copy.deepcopy(stored)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.writes.append(("delete", kind, name))
        self.objects.pop((kind, namespace, name), None)

    async def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Any]:
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if (k, ns) == (kind, namespace)
        ]

    async def patch_twin_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.writes.append(("status", "PhoenixTwin", name))
        self.statuses.append(status)

    def deployments_rolled_out(self) -> None:
        for (kind, _, _), body in self.objects.items():
            if kind in ("Deployment", "StatefulSet"):
                replicas = body["spec"]["replicas"]
                body["metadata"]["generation"] = 1
                body["status"] = {
                    "observedGeneration": 1,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                }


def twin_body(spec: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "phoenixtwin.io/v1alpha1",
        "kind": "PhoenixTwin",
        "metadata": {
            "name": "alice",
            "namespace": "team-a",
            "uid": "u-1",
            "generation": generation,
            "resourceVersion": str(generation),
        },
        "spec": spec or {},
    }


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def reconciler(kube: FakeKube, tmp_path: Path) -> Reconciler:
    connector = QdrantConnector(default_url="http://unused:6334", local_path=tmp_path, timeout=5)
    return Reconciler(
        kube,  # type: ignore[arg-type]
        connector,
        RenderContext(),
        Cache(),
        now=lambda: "2026-01-01T00:00:00Z",
    )


async def test_a_converged_twin_is_reconciled_without_a_single_write(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    reconciler.cache.put_twin(twin_body())
    await reconciler.reconcile(("team-a", "alice"), trigger="create", qdrant=True)
    assert len([w for w in kube.writes if w[0] == "apply"]) == 21
    kube.deployments_rolled_out()
    for body in kube.objects.values():
        reconciler.cache.put_child(body)
    await reconciler.reconcile(("team-a", "alice"), trigger="child", qdrant=False)
    assert kube.statuses[-1]["phase"] == "Ready"
    kube.writes.clear()
    for _ in range(3):
        await reconciler.reconcile(("team-a", "alice"), trigger="resync", qdrant=True)
    assert kube.writes == []


async def test_the_generated_api_key_survives_spec_changes_and_restarts(
    kube: FakeKube, reconciler: Reconciler, tmp_path: Path
) -> None:
    reconciler.cache.put_twin(twin_body())
    await reconciler.reconcile(("team-a", "alice"), trigger="create", qdrant=False)
    secret = kube.objects[("Secret", "team-a", "alice-gateway-api-key")]
    key = base64.b64decode(secret["data"]["api-key"])
    reconciler.cache.put_twin(twin_body({"llm": {"model": "other"}}, generation=2))
    await reconciler.reconcile(("team-a", "alice"), trigger="update", qdrant=False)
    # A new operator process: empty cache, the Secret is read back from the API.
    restarted = Reconciler(kube, reconciler.qdrant, RenderContext(), Cache())  # type: ignore[arg-type]
    restarted.cache.put_twin(twin_body({"llm": {"model": "third"}}, generation=3))
    await restarted.reconcile(("team-a", "alice"), trigger="update", qdrant=False)
    secret = kube.objects[("Secret", "team-a", "alice-gateway-api-key")]
    assert base64.b64decode(secret["data"]["api-key"]) == key


async def test_a_spec_change_applies_only_the_children_it_changes(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    reconciler.cache.put_twin(twin_body())
    await reconciler.reconcile(("team-a", "alice"), trigger="create", qdrant=False)
    kube.writes.clear()
    reconciler.cache.put_twin(twin_body({"llm": {"model": "other"}}, generation=2))
    await reconciler.reconcile(("team-a", "alice"), trigger="update", qdrant=False)
    applied = {(kind, name) for verb, kind, name in kube.writes if verb == "apply"}
    assert applied == {
        ("ConfigMap", "alice-orchestrator-env"),
        ("StatefulSet", "alice-orchestrator"),
    }


async def test_an_invalid_stored_spec_degrades_the_twin_and_touches_no_child(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    reconciler.cache.put_twin(twin_body({"llm": {"provider": "openai"}}))
    await reconciler.reconcile(("team-a", "alice"), trigger="create", qdrant=True)
    assert [w[0] for w in kube.writes] == ["status"]
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "llm.apiKeySecretRef" in degraded["message"]


async def test_children_the_rendering_drops_are_deleted(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    reconciler.cache.put_twin(twin_body({"gateway": {"replicas": 2}}))
    await reconciler.reconcile(("team-a", "alice"), trigger="create", qdrant=False)
    assert ("PodDisruptionBudget", "team-a", "alice-gateway") in kube.objects
    for body in kube.objects.values():
        body["metadata"]["ownerReferences"] = [{"uid": "u-1", "controller": True}]
        reconciler.cache.put_child(body)
    reconciler.cache.put_twin(twin_body({"networkPolicy": "Unmanaged"}, generation=2))
    await reconciler.reconcile(("team-a", "alice"), trigger="update", qdrant=False)
    kinds = {kind for kind, _, _ in kube.objects}
    assert "PodDisruptionBudget" not in kinds
    assert "NetworkPolicy" not in kinds
