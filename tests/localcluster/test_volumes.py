"""The test cluster's provisioner: which claims it serves and the volume it makes for one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.core_v1 import PersistentVolumeClaim

from localcluster import volumes


def claim(node: str | None = "node-a", **spec: Any) -> dict[str, Any]:
    annotations = {volumes.SELECTED_NODE: node} if node else {}
    return {
        "metadata": {
            "name": "state-orchestrator-0",
            "namespace": "twins",
            "uid": "u-1",
            "annotations": annotations,
        },
        "spec": {
            "storageClassName": "standard",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
            **spec,
        },
        "status": {"phase": "Pending"},
    }


def test_serves_pending_claims_of_its_class_once_their_pod_has_a_node() -> None:
    assert volumes.wants_volume(claim())
    assert not volumes.wants_volume(claim(node=None))  # no Pod scheduled yet: wait
    assert not volumes.wants_volume(claim(storageClassName="fast"))
    assert not volumes.wants_volume(claim(volumeName="pvc-u-1"))
    bound = claim()
    bound["status"]["phase"] = "Bound"
    assert not volumes.wants_volume(bound)
    going = claim()
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not volumes.wants_volume(going)


def test_the_volume_is_local_pinned_to_the_node_and_pre_bound_to_its_claim() -> None:
    pv = volumes.persistent_volume(claim(), Path("/w/volumes/pvc-u-1"), "node-a")
    assert volumes.selected_node(claim()) == "node-a"
    assert pv["metadata"]["name"] == "pvc-u-1"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == volumes.PROVISIONER
    spec = pv["spec"]
    # local, not hostPath: the kubelet applies the Pod's fsGroup to local volumes only.
    assert spec["local"] == {"path": "/w/volumes/pvc-u-1"}
    assert spec["capacity"] == {"storage": "2Gi"}
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "twins",
        "name": "state-orchestrator-0",
        "uid": "u-1",
    }
    (term,) = spec["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]}
    ]


def test_the_storage_class_is_the_default_and_names_this_provisioner() -> None:
    meta = volumes.STORAGE_CLASS["metadata"]
    assert meta["name"] == "standard"
    assert meta["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert volumes.STORAGE_CLASS["provisioner"] == volumes.PROVISIONER
    # Bound once a Pod is scheduled, on that Pod's node (see the module).
    assert volumes.STORAGE_CLASS["volumeBindingMode"] == "WaitForFirstConsumer"


class _Stop(BaseException):
    """Ends ``follow``'s endless loop in a test (a BaseException: ``follow`` must not catch it)."""


class _Object:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        return self.body


class _WatchingClient:
    """Serves scripted watches: each a list of events, or an exception the watch raises."""

    def __init__(self, *watches: list[tuple[str, dict[str, Any]]] | BaseException) -> None:
        self.watches = list(watches)
        self.calls = 0

    def watch(self, kind: object, **_: Any) -> Any:
        self.calls += 1
        script = self.watches.pop(0)
        if isinstance(script, BaseException):
            raise script
        return iter([(event, _Object(body)) for event, body in script])


def test_follow_hands_every_event_on_and_outlives_failures(tmp_path: Path) -> None:
    """A handler's failure skips one event; a watch that breaks is started again."""
    handled: list[str] = []

    def handle(client: Any, root: Path, body: dict[str, Any]) -> None:
        if body["metadata"]["name"] == "bad":
            raise RuntimeError("handler failed")
        handled.append(body["metadata"]["name"])

    client = _WatchingClient(
        [("ADDED", claim()), ("MODIFIED", {"metadata": {"name": "bad"}})],
        ValueError("not an HTTP error: the watch itself broke"),
        [("ADDED", {"metadata": {"name": "after-restart"}})],
        _Stop(),
    )
    with pytest.raises(_Stop):
        volumes.follow(client, tmp_path, PersistentVolumeClaim, handle)  # type: ignore[arg-type]
    assert handled == ["state-orchestrator-0", "after-restart"]
    assert client.calls == 4
