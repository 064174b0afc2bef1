"""Pure: the twin's status (conditions, phase, components) from what was observed.

Conditions follow the kstatus conventions: ``Ready`` is the summary
(``kubectl wait --for=condition=Ready`` works), ``Progressing`` is True while a
rollout is under way, ``Degraded`` carries the reason of anything the operator
could not do. Each condition and the status itself carry the observed
generation; a condition's ``lastTransitionTime`` only moves when its status does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phoenix_operator import naming
from phoenix_operator.api import COMPONENTS, Component, Phase


@dataclass(frozen=True)
class Problem:
    """Something the operator could not do for a twin: a Degraded reason and its message."""

    reason: str
    message: str


@dataclass(frozen=True)
class Observation:
    """Everything status depends on, gathered by the reconciler."""

    generation: int
    observed_generation: int
    deployments: Mapping[Component, Mapping[str, Any] | None]
    expected_hashes: Mapping[Component, str]
    problems: Sequence[Problem] = ()
    collections: Sequence[str] = ()
    collections_ready: bool = True
    suspended: bool = False
    gateway_api_key_secret: str | None = None


def component_status(
    deployment: Mapping[str, Any] | None, expected_hash: str | None
) -> dict[str, Any]:
    """A component is ready when its Deployment rolled out the expected config completely."""
    if deployment is None:
        return {"ready": False, "replicas": 0, "readyReplicas": 0, "updatedReplicas": 0}
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    meta = deployment.get("metadata", {})
    wanted = int(spec.get("replicas", 1))
    annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {})
    config_hash = annotations.get(naming.CONFIG_HASH_ANNOTATION, "")
    ready_replicas = int(status.get("readyReplicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    ready = (
        int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 1))
        and updated == wanted
        and int(status.get("replicas", 0)) == wanted
        and int(status.get("availableReplicas", 0)) >= wanted
        and ready_replicas >= wanted
        and (expected_hash is None or config_hash == expected_hash)
    )
    return {
        "ready": ready,
        "replicas": wanted,
        "readyReplicas": ready_replicas,
        "updatedReplicas": updated,
        "configHash": config_hash,
    }


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def conditions(observation: Observation) -> tuple[list[dict[str, Any]], Phase, str]:
    """Ready, Progressing, Degraded (without transition times), the phase and 'n/m' ready."""
    gen = observation.observed_generation
    components = {
        c: component_status(observation.deployments.get(c), observation.expected_hashes.get(c))
        for c in COMPONENTS
    }
    waiting = [c for c, s in components.items() if not s["ready"]]
    ready_count = f"{len(COMPONENTS) - len(waiting)}/{len(COMPONENTS)}"
    problems = list(observation.problems)
    if problems:
        degraded = _condition(
            "Degraded",
            True,
            problems[0].reason,
            "; ".join(p.message for p in problems),
            gen,
        )
    else:
        degraded = _condition("Degraded", False, "AsExpected", "No problem found.", gen)
    current = observation.observed_generation == observation.generation
    if observation.suspended:
        progressing = _condition(
            "Progressing", False, "Suspended", "spec.suspend is true: not reconciling.", gen
        )
    elif waiting or not current:
        what = ", ".join(waiting) if waiting else "the new generation"
        progressing = _condition("Progressing", True, "RollingOut", f"Waiting for {what}.", gen)
    else:
        progressing = _condition(
            "Progressing", False, "Reconciled", "All components are up to date.", gen
        )
    if problems:
        ready = _condition("Ready", False, problems[0].reason, degraded["message"], gen)
    elif waiting:
        ready = _condition(
            "Ready", False, "ComponentsNotReady", f"Not ready: {', '.join(waiting)}.", gen
        )
    elif not observation.collections_ready:
        ready = _condition("Ready", False, "CollectionsPending", "Collections not ensured.", gen)
    else:
        ready = _condition("Ready", True, "AllComponentsReady", "All components are ready.", gen)
    phase = _phase(observation, problems=bool(problems), ready=ready["status"] == "True")
    return [ready, progressing, degraded], phase, ready_count


def _phase(observation: Observation, *, problems: bool, ready: bool) -> Phase:
    if observation.suspended:
        return "Suspended"
    if problems:
        return "Degraded"
    if ready and observation.observed_generation == observation.generation:
        return "Ready"
    if any(observation.deployments.get(c) is not None for c in COMPONENTS):
        return "Progressing"
    return "Pending"


def with_transition_times(
    new: list[dict[str, Any]], old: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Keep each condition's lastTransitionTime unless its status changed."""
    previous = {c.get("type"): c for c in old}
    stamped = []
    for condition in new:
        before = previous.get(condition["type"])
        if before is not None and before.get("status") == condition["status"]:
            time = before.get("lastTransitionTime") or now
        else:
            time = now
        stamped.append({**condition, "lastTransitionTime": time})
    return stamped


def build(observation: Observation, previous: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The full status to write, given the previous one (for transition times)."""
    found, phase, ready_count = conditions(observation)
    status: dict[str, Any] = {
        "observedGeneration": observation.observed_generation,
        "phase": phase,
        "componentsReady": ready_count,
        "components": {
            c: component_status(observation.deployments.get(c), observation.expected_hashes.get(c))
            for c in COMPONENTS
        },
        "collections": list(observation.collections),
        "conditions": with_transition_times(found, previous.get("conditions") or [], now),
    }
    if observation.gateway_api_key_secret:
        status["gatewayApiKeySecret"] = observation.gateway_api_key_secret
    return status
