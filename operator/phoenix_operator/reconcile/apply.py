"""Bring a twin's children to its rendering: render, compare with the index, apply, prune.

A twin whose children are all live at the revisions this process verified, and
whose generation it already rendered, costs no rendering and no API call: that
is every resync and every echo of the operator's own writes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence

from phoenix_operator import metrics, render
from phoenix_operator.api import COMPONENTS, Twin
from phoenix_operator.kube import KubeClient, KubeError
from phoenix_operator.reconcile import children
from phoenix_operator.reconcile.children import ChildKey, LiveChild
from phoenix_operator.reconcile.state import Event, ReconcileResult, TwinState
from phoenix_operator.reconcile.status import Problem
from phoenix_operator.render.common import Manifest, RenderContext


class ChildApplier:
    """Applies and prunes one twin's children through a ``KubeClient``."""

    def __init__(self, kube: KubeClient, ctx: RenderContext) -> None:
        self.kube = kube
        self.ctx = ctx

    async def generated_secrets(
        self, twin: Twin, live: Mapping[ChildKey, LiveChild]
    ) -> dict[str, str]:
        """Each generated key (render.generated_secrets): read back from its Secret if it
        exists, generated once if not; never logged, never in a ConfigMap."""
        values = {}
        for wanted in render.generated_secrets(twin):
            secret = live.get(("Secret", wanted.name))
            value = children.secret_value(secret.body() if secret else None, wanted.key)
            if value is None:  # not in the index (yet): ask the API before generating one
                existing = await self.kube.get("v1", "Secret", twin.namespace, wanted.name)
                value = children.secret_value(existing, wanted.key)
            values[wanted.name] = value or secrets.token_urlsafe(32)
        return values

    async def reconcile(
        self,
        twin: Twin,
        state: TwinState,
        live: Mapping[ChildKey, LiveChild],
        result: ReconcileResult,
    ) -> None:
        rendered_for = (twin.uid, twin.generation)
        digests = {key: child.digest for key, child in live.items()}
        if state.rendered_for == rendered_for and state.converged_at(digests):
            return
        generated = await self.generated_secrets(twin, live)
        desired = children.rendered(render.children(twin, self.ctx, generated))
        state.config_hashes = {c: render.config.config_hash(twin, c, self.ctx) for c in COMPONENTS}
        in_flight = {key: applied for key, (_, applied) in state.in_flight.items()}
        created = state.created == rendered_for
        known = {render.key(m) for m in desired} if created else state.verified.keys()
        changes = children.compare(desired, live, twin.uid, known=known, in_flight=in_flight)
        verified: dict[ChildKey, int] = {}
        for key in map(render.key, desired):
            if key in state.in_flight and key in state.verified:
                verified[key] = state.verified[key]  # replaced below if written again
            elif key in live:
                verified[key] = live[key].digest
        failures: list[str] = []
        for wave in (changes.apply_first, changes.apply_last):
            failures += await self._apply(wave, changes.restored, state, verified, result)
        failures += await self._prune(changes.prune)
        if failures:
            state.problems["apply"] = Problem("ApplyFailed", "; ".join(failures))
            metrics.ERRORS.labels(reason="ApplyFailed").inc()
            state.rendered_for = None  # compare everything again next time
        else:
            state.problems.pop("apply", None)
            state.rendered_for = state.created = rendered_for
        state.verified = verified

    async def _apply(
        self,
        wave: Sequence[Manifest],
        restored: frozenset[ChildKey],
        state: TwinState,
        verified: dict[ChildKey, int],
        result: ReconcileResult,
    ) -> list[str]:
        outcomes = await asyncio.gather(
            *(self.kube.apply(manifest) for manifest in wave), return_exceptions=True
        )
        failures = []
        for manifest, outcome in zip(wave, outcomes, strict=True):
            kind, name = key = render.key(manifest)
            if isinstance(outcome, KubeError):
                verified.pop(key, None)
                if outcome.namespace_terminating:
                    state.namespace_terminating = True
                else:
                    failures.append(f"{kind} {name}: {outcome}")
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            written = children.live_child(outcome)
            verified[key] = written.digest
            if written.revision is not None:
                state.written(key, written.revision, written.applied_hash)
            if key in restored:
                metrics.DRIFT_RESTORED.labels(kind=kind).inc()
                result.events.append(Event("Normal", "ChildRestored", f"Restored {kind} {name}."))
        return failures

    async def _prune(self, extra: Sequence[LiveChild]) -> list[str]:
        """Delete children the rendering no longer contains (a PDB at one replica, ...)."""
        failures = []
        for child in extra:
            try:
                await self.kube.delete(child.api_version, child.kind, child.namespace, child.name)
            except KubeError as err:
                failures.append(f"delete {child.kind} {child.name}: {err}")
        return failures
