"""An in-memory API server and watch for the reconciler's unit tests.

The e2e tests run the operator against a real kube-apiserver; these fakes exist
so that the pure-ish reconcile logic (what is written, when, in which order) can
be tested exactly and quickly. They store what is applied the way the API server
does (a resourceVersion per write, server-filled fields) and hand it to the
``ClusterView`` only when the test delivers the watch events, so tests control
what the index has seen.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from phoenix_operator.kube import KubeError
from phoenix_operator.reconcile import children
from phoenix_operator.reconcile.children import LiveChild, TwinKey

Key = tuple[str, str, str]  # (kind, namespace, name)


class FakeKube:
    """Implements kube.KubeClient in memory; records every write."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.fail: dict[str, KubeError] = {}  # kind -> error every apply of it raises
        self._revision = itertools.count(100)

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        key = (manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        self.writes.append(("apply", key[0], key[2]))
        if manifest["kind"] in self.fail:
            raise self.fail[manifest["kind"]]
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

    async def patch_twin_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.writes.append(("status", "PhoenixTwin", name))
        self.statuses.append(status)

    async def post_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def edit(self, kind: str, namespace: str, name: str, **changes: Any) -> None:
        """Someone else changes a child: a new revision with ``changes`` merged into it."""
        body = self.objects[(kind, namespace, name)]
        for field, value in changes.items():
            body[field] = {**body.get(field, {}), **value}
        body["metadata"]["resourceVersion"] = str(next(self._revision))

    def roll_out(self) -> None:
        """What KCM and kubelets do: every workload fully rolled out, at a new revision."""
        for (kind, _, _), body in self.objects.items():
            if kind in ("Deployment", "StatefulSet"):
                replicas = body["spec"]["replicas"]
                body["metadata"]["generation"] = 1
                body["metadata"]["resourceVersion"] = str(next(self._revision))
                body["status"] = {
                    "observedGeneration": 1,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                }


class FakeView:
    """A ClusterView whose contents change only when the test delivers watch events."""

    def __init__(self) -> None:
        self.twins: dict[TwinKey, dict[str, Any]] = {}
        self.live: dict[TwinKey, dict[tuple[str, str], LiveChild]] = {}

    def twin(self, key: TwinKey) -> Mapping[str, Any] | None:
        return self.twins.get(key)

    def children(self, key: TwinKey) -> Sequence[LiveChild]:
        return list(self.live.get(key, {}).values())

    def deliver(self, kube: FakeKube) -> list[tuple[TwinKey, LiveChild, bool]]:
        """Every watch event still due: the index catches up with the fake API server.

        Returns the events as (twin, child, deleted), for the test to hand to the
        reconciler's state the way handlers.child_changed does.
        """
        events: list[tuple[TwinKey, LiveChild, bool]] = []
        current: dict[TwinKey, dict[tuple[str, str], LiveChild]] = {}
        for body in kube.objects.values():
            twin = children.twin_of(body)
            if twin is not None:
                child = children.live_child(body)
                current.setdefault(twin, {})[child.key] = child
                if self.live.get(twin, {}).get(child.key) != child:
                    events.append((twin, child, False))
        for twin, known in self.live.items():
            for key, child in known.items():
                if key not in current.get(twin, {}):
                    events.append((twin, child, True))
        self.live = current
        return events
