"""PhoenixTwin objects with the statuses the operator writes, for the GitOps health checks.

Statuses come from the operator's own status builder (phoenix_operator.reconcile.status), so
these tests break when the status contract changes, not only when the checks do.
"""

from __future__ import annotations

from typing import Any

from phoenix_operator.api import COMPONENTS
from phoenix_operator.naming import CONFIG_HASH_ANNOTATION
from phoenix_operator.reconcile import status as twin_status
from phoenix_operator.reconcile.children import Rollout

NOW = "2026-01-01T00:00:00Z"


def _deployment(ready: bool, config_hash: str = "h") -> Rollout:
    replicas = 1
    return Rollout.from_deployment(
        {
            "metadata": {"generation": 1},
            "spec": {
                "replicas": replicas,
                "template": {"metadata": {"annotations": {CONFIG_HASH_ANNOTATION: config_hash}}},
            },
            "status": {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas if ready else 0,
                "readyReplicas": replicas if ready else 0,
            },
        }
    )


def operator_status(
    *,
    generation: int,
    observed: int | None = None,
    ready: bool = True,
    problem: twin_status.Problem | None = None,
    suspended: bool = False,
) -> dict[str, Any]:
    """The status the operator writes for a twin in the given state."""
    observation = twin_status.Observation(
        generation=generation,
        observed_generation=generation if observed is None else observed,
        rollouts={c: _deployment(ready=ready or c != "memory") for c in COMPONENTS},
        expected_hashes=dict.fromkeys(COMPONENTS, "h"),
        problems=[problem] if problem else [],
        suspended=suspended,
    )
    return twin_status.build(observation, None, NOW).wire()


def twin(generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "phoenixtwin.io/v1alpha1",
        "kind": "PhoenixTwin",
        "metadata": {"name": "demo", "namespace": "team-a", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    return obj


def ready() -> dict[str, Any]:
    return twin(3, operator_status(generation=3))


def progressing() -> dict[str, Any]:
    """Generation observed, memory's Deployment still rolling out."""
    return twin(3, operator_status(generation=3, ready=False))


def degraded() -> dict[str, Any]:
    problem = twin_status.Problem("QdrantUnreachable", "Qdrant at http://q:6334 did not answer")
    return twin(3, operator_status(generation=3, problem=problem))


def stale() -> dict[str, Any]:
    """The spec changed (generation 4) after the operator reported Ready for generation 3."""
    return twin(4, operator_status(generation=3))


def no_status() -> dict[str, Any]:
    return twin(1, None)


def suspended() -> dict[str, Any]:
    return twin(2, operator_status(generation=2, suspended=True))
