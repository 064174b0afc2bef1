"""The kopf wiring: what is indexed (compactly), which handlers exist, which need a finalizer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf
import pytest
from pydantic import ValidationError

from phoenix_operator import handlers
from phoenix_operator.reconcile import children
from phoenix_operator.reconcile.collections import Collections
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.reconcile.queue import ReconcileQueue
from phoenix_operator.reconcile.twins import Reconciler
from phoenix_operator.render import RenderContext
from phoenix_operator.settings import OperatorSettings
from tests.operator.fakes import FakeKube, FakeView


def deployment(**meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "alice-memory",
            "namespace": "team-a",
            "uid": "d-1",
            "resourceVersion": "42",
            "generation": 2,
            "labels": {
                "phoenixtwin.io/twin": "alice",
                "app.kubernetes.io/managed-by": "phoenix-operator",
            },
            "annotations": {"phoenixtwin.io/applied-hash": "abc"},
            "ownerReferences": [{"uid": "u-1", "controller": True, "kind": "PhoenixTwin"}],
            "managedFields": [{"manager": "phoenix-operator", "fieldsV1": {"f:spec": {}}}],
            "creationTimestamp": "2026-01-01T00:00:00Z",
            **meta,
        },
        "spec": {
            "replicas": 1,
            "template": {"metadata": {"annotations": {"phoenixtwin.io/config-hash": "h"}}},
        },
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                   "readyReplicas": 1, "availableReplicas": 1},
    }  # fmt: skip


async def test_the_children_index_keeps_a_compact_comparable_record_per_twin() -> None:
    body = kopf.Body(deployment())  # type: ignore[arg-type]
    indexed = await handlers.children_index(body=body)
    ((key, child),) = indexed.items()
    assert key == ("team-a", "alice")
    assert (child.kind, child.name, child.revision) == ("Deployment", "alice-memory", 42)
    assert (child.controller_uid, child.applied_hash) == ("u-1", "abc")
    kept = child.body()
    assert set(kept) == {"apiVersion", "kind", "metadata", "spec"}  # no status
    assert set(kept["metadata"]) == {
        "name",
        "namespace",
        "labels",
        "annotations",
        "ownerReferences",
    }
    assert child.rollout is not None
    assert child.rollout.ready_replicas == 1


async def test_a_projected_child_indexes_as_the_full_object_without_its_spec() -> None:
    full = deployment()
    projected = children.projected(deployment())
    assert set(projected) == {"apiVersion", "kind", "metadata", children.LIVE_CHILD_FIELD}
    assert "managedFields" not in projected["metadata"]
    assert projected["metadata"]["labels"] == full["metadata"]["labels"]  # kopf's filters
    assert projected["metadata"]["uid"] == "d-1"  # kopf's per-object identity
    from_full = await handlers.children_index(body=kopf.Body(full))  # type: ignore[arg-type]
    from_projected = await handlers.children_index(body=kopf.Body(projected))  # type: ignore[arg-type]
    assert from_projected == from_full
    ((_, child),) = from_projected.items()
    assert child.body()["spec"] == full["spec"]  # the comparison still sees the spec


def test_every_child_kind_is_projected_and_twins_are_not() -> None:
    assert set(handlers.PROJECTIONS) == {(g, p) for g, _, p in handlers.CHILD_RESOURCES}
    assert ("phoenixtwin.io", "phoenixtwins") not in handlers.PROJECTIONS


async def test_a_status_only_change_keeps_the_childs_digest() -> None:
    before = children.live_child(deployment())
    after_body = deployment(resourceVersion="43")
    after_body["status"]["readyReplicas"] = 0
    after = children.live_child(after_body)
    assert before.digest == after.digest
    assert before.rollout != after.rollout


def test_every_handler_is_registered_and_only_reclaiming_twins_need_the_finalizer() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, OperatorSettings(resync_seconds=30))
    indexers = {h.id for h in registry._indexing.get_all_handlers()}
    assert indexers == {"twins", "children"}
    timers = registry._spawning.get_all_handlers()
    assert [(t.id, t.interval) for t in timers] == [("resync", 30)]  # type: ignore[attr-defined]
    assert not any(t.requires_finalizer for t in timers)
    deletions = [h for h in registry._changing.get_all_handlers() if h.requires_finalizer]
    assert [h.id for h in deletions] == ["reclaim"]
    changing = {(h.fn, h.reason, h.initial) for h in registry._changing.get_all_handlers()}
    assert {
        (handlers.reconcile_twin, None, True),  # resume
        (handlers.reconcile_twin, "create", None),
        (handlers.reconcile_twin, "update", None),
    } <= changing


def test_a_twin_selector_shards_the_twins_watch_server_side() -> None:
    config = handlers.kopf_settings(OperatorSettings(twin_selector="phoenixtwin.io/shard=a"))
    assert config.watching.label_selectors[("phoenixtwin.io", "phoenixtwins")] == (
        "phoenixtwin.io/shard=a"
    )
    assert config.watching.label_selectors[("apps", "deployments")] == (
        "app.kubernetes.io/managed-by=phoenix-operator"
    )


def test_kopf_ends_an_idle_objects_worker_after_the_setting_not_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert handlers.kopf_settings(OperatorSettings()).queueing.idle_timeout == 0.5
    monkeypatch.setenv("PHOENIX_OPERATOR_WORKER_IDLE_SECONDS", "2")
    assert handlers.kopf_settings(OperatorSettings()).queueing.idle_timeout == 2.0


@pytest.mark.parametrize("value", ["0", "-1", "61", "soon"])
def test_a_worker_idle_time_out_of_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PHOENIX_OPERATOR_WORKER_IDLE_SECONDS", value)
    with pytest.raises(ValidationError, match="PHOENIX_OPERATOR_WORKER_IDLE_SECONDS"):
        OperatorSettings()


def test_kopf_keeps_a_diff_base_for_twins_and_copies_no_child() -> None:
    storage = handlers.kopf_settings(OperatorSettings()).persistence.diffbase_storage
    twin: Any = {
        "apiVersion": "phoenixtwin.io/v1alpha1",
        "kind": "PhoenixTwin",
        "metadata": {"name": "alice", "namespace": "team-a", "labels": {"team": "a"}},
        "spec": {"suspend": True},
    }
    essence = storage.build(body=kopf.Body(twin))
    assert essence["spec"] == {"suspend": True}  # the twins' change handlers see changes
    assert essence["metadata"]["labels"] == {"team": "a"}
    child: Any = deployment()
    assert storage.build(body=kopf.Body(child)) == {}


@pytest.mark.parametrize("reason", ["resume", "create", "update"])
async def test_a_twin_handler_queues_its_twin_and_does_not_wait(reason: str) -> None:
    async def never_runs(key: Any, trigger: str) -> Any:
        raise AssertionError("the queue is not started")

    queue = ReconcileQueue(never_runs, workers=1)  # not started: a waiting handler would hang
    memo = kopf.Memo(operator=handlers.Operator(OperatorSettings(), None, None, queue))  # type: ignore[arg-type]
    body = kopf.Body({"metadata": {"name": "alice", "namespace": "team-a", "uid": "u-1"}})
    await asyncio.wait_for(handlers.reconcile_twin(body=body, reason=reason, memo=memo), 5)
    assert len(queue) == 1
    assert queue._pending[("team-a", "alice")].trigger == reason
    await queue.stop()


@pytest.mark.parametrize("project", [False, True], ids=["full", "projected"])
async def test_child_events_queue_their_twin_once_and_echoes_not_at_all(
    tmp_path: Path, project: bool
) -> None:
    def as_kopf_holds(obj: dict[str, Any]) -> kopf.Body:
        return kopf.Body(children.projected(obj) if project else obj)  # type: ignore[arg-type]

    kube, view = FakeKube(), FakeView()
    reconciler = Reconciler(
        view,
        kube,
        Collections(
            kube, QdrantConnector(default_url="http://q:6334", local_path=tmp_path, timeout=1)
        ),
        RenderContext(),
    )
    queue = ReconcileQueue(reconciler.reconcile, workers=1)  # not started: requests stay queued
    memo = kopf.Memo(operator=handlers.Operator(OperatorSettings(), kube, reconciler, queue))  # type: ignore[arg-type]
    view.twins[("team-a", "alice")] = {
        "metadata": {"name": "alice", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {},
    }
    await reconciler.reconcile(("team-a", "alice"), "create")
    events = view.deliver(kube)
    for _, child, _ in events:  # the watch delivers the operator's own 20 writes
        body = as_kopf_holds(kube.objects[(child.kind, "team-a", child.name)])
        await handlers.child_changed(type="ADDED", body=body, memo=memo)
    assert len(queue) == 1  # only the Deployments' events (their status feeds the twin's)

    kube.edit("ConfigMap", "team-a", "alice-gateway-env", data={"GATEWAY_PORT": "1"})
    edited = as_kopf_holds(kube.objects[("ConfigMap", "team-a", "alice-gateway-env")])
    for _ in range(5):
        await handlers.child_changed(type="MODIFIED", body=edited, memo=memo)
    assert len(queue) == 1  # coalesced into the waiting request
