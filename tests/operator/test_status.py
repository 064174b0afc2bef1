"""Conditions, phase and per-component readiness from what the operator observed."""

from __future__ import annotations

from typing import Any

from phoenix_operator.api import COMPONENTS, TwinStatus
from phoenix_operator.reconcile import status
from phoenix_operator.reconcile.children import Rollout


def deployment(
    *, replicas: int = 1, ready: int = 1, generation: int = 1, observed: int = 1, hash_: str = "h"
) -> Rollout:
    return Rollout.from_deployment(
        {
            "metadata": {"generation": generation},
            "spec": {
                "replicas": replicas,
                "template": {"metadata": {"annotations": {"phoenixtwin.io/config-hash": hash_}}},
            },
            "status": {
                "observedGeneration": observed,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
            },
        }
    )


def observation(**changes: Any) -> status.Observation:
    values: dict[str, Any] = {
        "generation": 2,
        "observed_generation": 2,
        "rollouts": {c: deployment() for c in COMPONENTS},
        "expected_hashes": dict.fromkeys(COMPONENTS, "h"),
        "collections": ["phx.team-a.alice.default"],
    }
    return status.Observation(**{**values, **changes})


def build(observation: status.Observation, previous: TwinStatus | None, now: str) -> dict[str, Any]:
    """The status as written to the API server."""
    return status.build(observation, previous, now).wire()


def by_type(built: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in built["conditions"]}


def test_all_components_rolled_out_make_the_twin_ready() -> None:
    built = build(observation(), None, "2026-01-01T00:00:00Z")
    conditions = by_type(built)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "True",
        "AllComponentsReady",
    )
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["Degraded"]["status"] == "False"
    assert all(c["observedGeneration"] == 2 for c in built["conditions"])
    assert built["observedGeneration"] == 2
    assert (built["phase"], built["componentsReady"]) == ("Ready", "4/4")


def test_a_rollout_in_progress_is_progressing_and_not_ready() -> None:
    deployments = {c: deployment() for c in COMPONENTS}
    deployments["memory"] = deployment(generation=2, observed=1)
    built = build(observation(rollouts=deployments), None, "t")
    conditions = by_type(built)
    assert conditions["Ready"]["reason"] == "ComponentsNotReady"
    assert conditions["Ready"]["message"] == "Not ready: memory."
    assert conditions["Progressing"]["status"] == "True"
    assert (built["phase"], built["componentsReady"]) == ("Progressing", "3/4")


def test_a_pod_template_with_an_old_config_hash_is_not_ready() -> None:
    hashes = {**dict.fromkeys(COMPONENTS, "h"), "tools": "new"}
    built = build(observation(expected_hashes=hashes), None, "t")
    assert built["components"]["tools"]["ready"] is False
    assert built["components"]["gateway"] == {
        "ready": True,
        "replicas": 1,
        "readyReplicas": 1,
        "updatedReplicas": 1,
        "configHash": "h",
    }


def test_a_problem_degrades_the_twin_with_its_reason_and_message() -> None:
    problem = status.Problem("QdrantUnreachable", "Qdrant at http://q:6334 is unreachable")
    built = build(observation(problems=[problem]), None, "t")
    conditions = by_type(built)
    assert conditions["Degraded"] | {"lastTransitionTime": None} == {
        "type": "Degraded",
        "status": "True",
        "reason": "QdrantUnreachable",
        "message": "Qdrant at http://q:6334 is unreachable",
        "observedGeneration": 2,
        "lastTransitionTime": None,
    }
    assert conditions["Ready"]["status"] == "False"
    assert built["phase"] == "Degraded"


def test_a_suspended_twin_says_so() -> None:
    built = build(observation(suspended=True), None, "t")
    assert by_type(built)["Progressing"]["reason"] == "Suspended"
    assert built["phase"] == "Suspended"


def test_no_deployment_yet_is_pending() -> None:
    built = build(observation(rollouts={}, observed_generation=1), None, "t")
    assert built["phase"] == "Pending"
    assert built["componentsReady"] == "0/4"


def test_transition_times_move_only_when_a_status_changes() -> None:
    first = status.build(observation(), None, "2026-01-01T00:00:00Z")
    same = status.build(observation(), first, "2026-01-02T00:00:00Z")
    assert same == first
    problem = status.Problem("ApplyFailed", "Deployment x: forbidden")
    changed = status.build(observation(problems=[problem]), first, "2026-01-03T00:00:00Z")
    times = {c.type: c.last_transition_time for c in changed.conditions}
    assert times == {
        "Ready": "2026-01-03T00:00:00Z",
        "Progressing": "2026-01-01T00:00:00Z",
        "Degraded": "2026-01-03T00:00:00Z",
    }


def test_a_stored_status_reads_back_into_the_same_model() -> None:
    built = status.build(observation(), None, "2026-01-01T00:00:00Z")
    assert TwinStatus.from_body({"status": built.wire()}) == built
    assert TwinStatus.from_body({"status": {"phase": "Nonsense"}}) is None
    assert TwinStatus.from_body({}) is None
