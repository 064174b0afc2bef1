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

from phoenix_operator.api import (
    COMPONENTS,
    Component,
    ComponentStatus,
    Condition,
    ConditionType,
    Phase,
    TwinStatus,
)
from phoenix_operator.reconcile.children import Rollout


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
    rollouts: Mapping[Component, Rollout | None]
    expected_hashes: Mapping[Component, str]
    problems: Sequence[Problem] = ()
    collections: Sequence[str] = ()
    collections_ready: bool = True
    suspended: bool = False
    gateway_api_key_secret: str | None = None


def component_status(rollout: Rollout | None, expected_hash: str | None) -> ComponentStatus:
    """A component is ready when its Deployment rolled out the expected config completely."""
    if rollout is None:
        return ComponentStatus(ready=False, replicas=0, ready_replicas=0, updated_replicas=0)
    wanted = rollout.replicas
    ready = (
        rollout.observed_generation >= rollout.generation
        and rollout.updated_replicas == wanted
        and rollout.current_replicas == wanted
        and rollout.available_replicas >= wanted
        and rollout.ready_replicas >= wanted
        and (expected_hash is None or rollout.config_hash == expected_hash)
    )
    return ComponentStatus(
        ready=ready,
        replicas=wanted,
        ready_replicas=rollout.ready_replicas,
        updated_replicas=rollout.updated_replicas,
        config_hash=rollout.config_hash,
    )


def _condition(
    kind: ConditionType, ok: bool, reason: str, message: str, generation: int
) -> Condition:
    return Condition(
        type=kind,
        status="True" if ok else "False",
        reason=reason,
        message=message,
        observed_generation=generation,
    )


def conditions(
    observation: Observation, components: Mapping[Component, ComponentStatus]
) -> tuple[list[Condition], Phase]:
    """Ready, Progressing, Degraded (without transition times) and the phase."""
    gen = observation.observed_generation
    waiting = [c for c in COMPONENTS if not components[c].ready]
    problems = list(observation.problems)
    if problems:
        message = "; ".join(p.message for p in problems)
        degraded = _condition("Degraded", True, problems[0].reason, message, gen)
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
        ready = _condition("Ready", False, problems[0].reason, degraded.message, gen)
    elif waiting:
        ready = _condition(
            "Ready", False, "ComponentsNotReady", f"Not ready: {', '.join(waiting)}.", gen
        )
    elif not observation.collections_ready:
        ready = _condition("Ready", False, "CollectionsPending", "Collections not ensured.", gen)
    else:
        ready = _condition("Ready", True, "AllComponentsReady", "All components are ready.", gen)
    phase = _phase(observation, problems=bool(problems), ready=ready.status == "True")
    return [ready, progressing, degraded], phase


def _phase(observation: Observation, *, problems: bool, ready: bool) -> Phase:
    if observation.suspended:
        return "Suspended"
    if problems:
        return "Degraded"
    if ready and observation.observed_generation == observation.generation:
        return "Ready"
    if any(observation.rollouts.get(c) is not None for c in COMPONENTS):
        return "Progressing"
    return "Pending"


def with_transition_times(
    new: Sequence[Condition], old: Sequence[Condition], now: str
) -> tuple[Condition, ...]:
    """Keep each condition's lastTransitionTime unless its status changed."""
    previous = {c.type: c for c in old}
    stamped = []
    for condition in new:
        before = previous.get(condition.type)
        if before is not None and before.status == condition.status:
            time = before.last_transition_time or now
        else:
            time = now
        stamped.append(condition.model_copy(update={"last_transition_time": time}))
    return tuple(stamped)


def build(observation: Observation, previous: TwinStatus | None, now: str) -> TwinStatus:
    """The full status to write, given the previous one (for transition times)."""
    components = {
        c: component_status(observation.rollouts.get(c), observation.expected_hashes.get(c))
        for c in COMPONENTS
    }
    found, phase = conditions(observation, components)
    ready_count = sum(1 for c in COMPONENTS if components[c].ready)
    return TwinStatus(
        observed_generation=observation.observed_generation,
        phase=phase,
        components_ready=f"{ready_count}/{len(COMPONENTS)}",
        components=components,
        collections=tuple(observation.collections),
        conditions=with_transition_times(
            found, previous.conditions if previous is not None else (), now
        ),
        gateway_api_key_secret=observation.gateway_api_key_secret,
    )
