"""The reconciler against an in-memory API server: writes only what changed, never rotates keys,
never mistakes the index's lag behind its own writes for drift, and backs off on failures."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from phoenix_operator.kube import KubeError
from phoenix_operator.reconcile.collections import Collections
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.reconcile.twins import Reconciler
from phoenix_operator.render import RenderContext
from tests.operator.fakes import FakeKube, FakeView

KEY = ("team-a", "alice")


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
def view() -> FakeView:
    return FakeView()


def make_reconciler(kube: FakeKube, view: FakeView, tmp_path: Path) -> Reconciler:
    connector = QdrantConnector(default_url="http://unused:6334", local_path=tmp_path, timeout=5)
    return Reconciler(
        view,
        kube,
        Collections(kube, connector, retry_seconds=6),
        RenderContext(),
        now=lambda: "2026-01-01T00:00:00Z",
    )


@pytest.fixture
def reconciler(kube: FakeKube, view: FakeView, tmp_path: Path) -> Reconciler:
    return make_reconciler(kube, view, tmp_path)


def watch(kube: FakeKube, view: FakeView, reconciler: Reconciler) -> None:
    """Deliver the due watch events to the index and the reconciler (as child_changed does)."""
    for twin, child, deleted in view.deliver(kube):
        state = reconciler.state(twin)
        if state is not None:
            state.seen(child.key, child.revision, deleted=deleted)


async def converge(kube: FakeKube, view: FakeView, reconciler: Reconciler) -> None:
    """Create the twin's children, let them roll out and report Ready (status stored)."""
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")
    kube.roll_out()
    watch(kube, view, reconciler)
    await reconciler.reconcile(KEY, "child")
    assert kube.statuses[-1]["phase"] == "Ready"
    view.twins[KEY] = {**twin_body(), "status": kube.statuses[-1]}


def applies(kube: FakeKube) -> set[tuple[str, str]]:
    return {(kind, name) for verb, kind, name in kube.writes if verb == "apply"}


async def test_a_converged_twin_costs_no_write_on_resync(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")
    assert len(applies(kube)) == 21  # with the gateway's session-key Secret
    kube.roll_out()
    watch(kube, view, reconciler)
    await reconciler.reconcile(KEY, "child")
    view.twins[KEY] = {**twin_body(), "status": kube.statuses[-1]}
    kube.writes.clear()
    for _ in range(3):
        await reconciler.reconcile(KEY, "resync")
    assert kube.writes == []


async def test_a_restarted_operator_with_a_full_index_writes_nothing(
    kube: FakeKube, view: FakeView, reconciler: Reconciler, tmp_path: Path
) -> None:
    """What kopf's index barrier buys: the new process compares against everything."""
    await converge(kube, view, reconciler)
    kube.writes.clear()
    restarted = make_reconciler(kube, view, tmp_path)  # no state at all
    result = await restarted.reconcile(KEY, "resume")
    assert kube.writes == []
    assert result.events == []  # nothing happened: no event either (Events are writes too)


async def test_a_restart_with_a_partial_index_would_rewrite_children(
    kube: FakeKube, view: FakeView, reconciler: Reconciler, tmp_path: Path
) -> None:
    """The failure the index barrier prevents: children missing from the view get re-applied."""
    await converge(kube, view, reconciler)
    kube.writes.clear()
    view.live[KEY] = {k: c for k, c in view.live[KEY].items() if k[0] != "ConfigMap"}
    await make_reconciler(kube, view, tmp_path).reconcile(KEY, "resume")
    assert {kind for kind, _ in applies(kube)} == {"ConfigMap"}


async def test_own_writes_not_yet_seen_by_the_watch_are_not_written_again(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")
    kube.writes.clear()
    # A Deployment event arrives before the other children's: the index is behind our writes.
    await reconciler.reconcile(KEY, "child")
    assert applies(kube) == set()
    watch(kube, view, reconciler)
    await reconciler.reconcile(KEY, "child")
    assert applies(kube) == set()


async def test_watch_events_of_own_writes_are_recognised_as_echoes(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")
    state = reconciler.state(KEY)
    assert state is not None
    for _, child, _ in view.deliver(kube):
        state.seen(child.key, child.revision)
        assert state.verified[child.key] == child.digest, child.key
    assert state.in_flight == {}


async def test_a_deleted_child_is_restored_with_an_event(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    await converge(kube, view, reconciler)
    kube.writes.clear()
    del kube.objects[("Deployment", "team-a", "alice-memory")]
    watch(kube, view, reconciler)
    result = await reconciler.reconcile(KEY, "child")
    assert applies(kube) == {("Deployment", "alice-memory")}
    assert ("Normal", "ChildRestored") in {(e.type, e.reason) for e in result.events}
    posted = kube.events[-1]
    assert (posted["reason"], posted["message"]) == (
        "ChildRestored",
        "Restored Deployment alice-memory.",
    )
    assert posted["involvedObject"] == {
        "apiVersion": "phoenixtwin.io/v1alpha1",
        "kind": "PhoenixTwin",
        "name": "alice",
        "namespace": "team-a",
        "uid": "u-1",
    }


async def test_an_edited_child_is_put_back(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    await converge(kube, view, reconciler)
    kube.writes.clear()
    kube.edit("ConfigMap", "team-a", "alice-gateway-env", data={"GATEWAY_PORT": "1"})
    watch(kube, view, reconciler)
    result = await reconciler.reconcile(KEY, "child")
    assert applies(kube) == {("ConfigMap", "alice-gateway-env")}
    assert kube.objects[("ConfigMap", "team-a", "alice-gateway-env")]["data"]["GATEWAY_PORT"] == (
        "8181"
    )
    assert "ChildRestored" in {e.reason for e in result.events}


async def test_the_generated_api_key_survives_spec_changes_and_restarts(
    kube: FakeKube, view: FakeView, reconciler: Reconciler, tmp_path: Path
) -> None:
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")
    secret = kube.objects[("Secret", "team-a", "alice-gateway-api-key")]
    key = base64.b64decode(secret["data"]["api-key"])
    view.twins[KEY] = twin_body({"llm": {"model": "other"}}, generation=2)
    await reconciler.reconcile(KEY, "update")
    # A new process whose index has not seen the Secret: it is read back from the API.
    restarted = make_reconciler(kube, FakeView(), tmp_path)
    restarted.view.twins[KEY] = twin_body({"llm": {"model": "third"}}, generation=3)  # type: ignore[attr-defined]
    await restarted.reconcile(KEY, "update")
    secret = kube.objects[("Secret", "team-a", "alice-gateway-api-key")]
    assert base64.b64decode(secret["data"]["api-key"]) == key


async def test_a_spec_change_applies_only_the_children_it_changes(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    await converge(kube, view, reconciler)
    kube.writes.clear()
    view.twins[KEY] = twin_body({"llm": {"model": "other"}}, generation=2)
    await reconciler.reconcile(KEY, "update")
    assert applies(kube) == {
        ("ConfigMap", "alice-orchestrator-env"),
        ("StatefulSet", "alice-orchestrator"),
    }


async def test_workloads_are_applied_after_the_configuration_they_read(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")
    kinds = [kind for verb, kind, _ in kube.writes if verb == "apply"]
    workloads = {"Deployment", "StatefulSet"}
    first_workload = min(i for i, kind in enumerate(kinds) if kind in workloads)
    assert set(kinds[first_workload:]) == workloads
    assert {"ConfigMap", "Secret", "ServiceAccount"} <= set(kinds[:first_workload])


async def test_an_invalid_stored_spec_degrades_the_twin_and_touches_no_child(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body({"llm": {"provider": "openai"}})
    result = await reconciler.reconcile(KEY, "create")
    assert [w[0] for w in kube.writes] == ["status"]
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "llm.apiKeySecretRef" in degraded["message"]
    assert result.retry_after is None  # only the user can fix it: no retry loop


async def test_children_the_rendering_drops_are_deleted(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body({"gateway": {"replicas": 2}})
    await reconciler.reconcile(KEY, "create")
    assert ("PodDisruptionBudget", "team-a", "alice-gateway") in kube.objects
    watch(kube, view, reconciler)
    view.twins[KEY] = twin_body({"networkPolicy": "Unmanaged"}, generation=2)
    await reconciler.reconcile(KEY, "update")
    kinds = {kind for kind, _, _ in kube.objects}
    assert "PodDisruptionBudget" not in kinds
    assert "NetworkPolicy" not in kinds


async def test_a_twin_that_keeps_failing_is_degraded_warned_once_and_backs_off(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    kube.fail["Deployment"] = KubeError(422, "Deployment.apps is invalid: spec.template")
    view.twins[KEY] = twin_body()
    delays, warnings = [], []
    for _ in range(4):
        result = await reconciler.reconcile(KEY, "resync")
        delays.append(result.retry_after)
        warnings += [e.reason for e in result.events if e.type == "Warning"]
        watch(kube, view, reconciler)
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ApplyFailed")
    assert "spec.template" in degraded["message"]
    assert warnings == ["ApplyFailed"]
    assert delays == [1.0, 2.0, 4.0, 8.0]

    del kube.fail["Deployment"]
    result = await reconciler.reconcile(KEY, "resync")
    assert result.retry_after is None
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert degraded["status"] == "False"


async def test_an_unexpected_error_becomes_a_degraded_condition_not_a_crash(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    async def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    reconciler.children.reconcile = broken  # type: ignore[method-assign,assignment]
    view.twins[KEY] = twin_body()
    result = await reconciler.reconcile(KEY, "resync")
    degraded = {c["type"]: c for c in kube.statuses[-1]["conditions"]}["Degraded"]
    assert (degraded["reason"], degraded["message"]) == ("ReconcileFailed", "RuntimeError: boom")
    assert result.retry_after is not None


async def test_a_deleted_twin_is_not_reconciled(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    await reconciler.reconcile(KEY, "resync")
    assert kube.writes == []


async def test_a_spec_change_while_a_write_is_in_flight_is_still_applied(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    view.twins[KEY] = twin_body()
    await reconciler.reconcile(KEY, "create")  # nothing delivered by the watch yet
    view.twins[KEY] = twin_body({"llm": {"model": "other"}}, generation=2)
    kube.writes.clear()
    await reconciler.reconcile(KEY, "update")
    assert applies(kube) == {
        ("ConfigMap", "alice-orchestrator-env"),
        ("StatefulSet", "alice-orchestrator"),
    }
    watch(kube, view, reconciler)
    kube.writes.clear()
    await reconciler.reconcile(KEY, "resync")
    assert applies(kube) == set()
    env = kube.objects[("ConfigMap", "team-a", "alice-orchestrator-env")]["data"]
    assert env["OPENROUTER_MODEL"] == "other"


async def test_a_watch_event_that_beats_the_apply_response_ends_the_write_in_flight(
    kube: FakeKube, view: FakeView, reconciler: Reconciler
) -> None:
    """The event of a write can be handled before the write's own response arrives."""
    await converge(kube, view, reconciler)
    state = reconciler.state(KEY)
    assert state is not None
    state.seen(("ConfigMap", "alice-tools-policy"), 10_000)  # delivered first...
    state.written(("ConfigMap", "alice-tools-policy"), 10_000, "h")  # ...answered second
    assert state.in_flight == {}


async def test_a_child_deleted_while_the_operator_was_down_is_reported_as_restored(
    kube: FakeKube, view: FakeView, reconciler: Reconciler, tmp_path: Path
) -> None:
    await converge(kube, view, reconciler)
    del kube.objects[("Deployment", "team-a", "alice-tools")]
    view.deliver(kube)
    kube.writes.clear()
    result = await make_reconciler(kube, view, tmp_path).reconcile(KEY, "resume")
    assert applies(kube) == {("Deployment", "alice-tools")}
    assert "ChildRestored" in {e.reason for e in result.events}
