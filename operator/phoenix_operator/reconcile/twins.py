"""Reconcile one twin: its children, its collections, its status, its events.

Level-based: every trigger (the twin's change handlers, a child's watch event,
the periodic resync) runs this same function through the ReconcileQueue, so the
result does not depend on which edge fired. It reads the twin and its children
from kopf's indices, which kopf lists completely before any handler runs: after
a restart the operator compares against the whole cluster state, never a partial
one, and a converged twin costs no API write at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from phoenix_common.errors import InvalidInput
from phoenix_operator import metrics, naming, render
from phoenix_operator.api import COMPONENTS, Component, Twin, TwinStatus
from phoenix_operator.kube import KubeClient, KubeError, event_for
from phoenix_operator.reconcile import status
from phoenix_operator.reconcile.apply import ChildApplier
from phoenix_operator.reconcile.children import LiveChild, Rollout, TwinKey, newest
from phoenix_operator.reconcile.collections import Collections
from phoenix_operator.reconcile.state import Event, ReconcileResult, TwinState
from phoenix_operator.reconcile.status import Problem
from phoenix_operator.render import config as render_config
from phoenix_operator.render.common import RenderContext

logger = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 300.0


class ClusterView(Protocol):
    """The twins and children the operator's watches hold (kopf indices in production)."""

    def twin(self, key: TwinKey) -> Mapping[str, Any] | None: ...

    def children(self, key: TwinKey) -> Sequence[LiveChild]: ...


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_delay(base: float, failures: int) -> float:
    """Exponential delay after ``failures`` consecutive failed reconciles, capped at 5 minutes."""
    return float(min(MAX_RETRY_SECONDS, base * 2 ** min(max(failures - 1, 0), 10)))


class Reconciler:
    """Per-twin state plus the steps; ``reconcile`` is the one entry point."""

    def __init__(
        self,
        view: ClusterView,
        kube: KubeClient,
        collections: Collections,
        ctx: RenderContext,
        *,
        now: Callable[[], str] = utc_now,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.view = view
        self.kube = kube
        self.ctx = ctx
        self.children = ChildApplier(kube, ctx)
        self.collections = collections
        self._now = now
        self._clock = clock
        self._states: dict[TwinKey, TwinState] = {}

    def state(self, key: TwinKey) -> TwinState | None:
        return self._states.get(key)

    def forget(self, key: TwinKey) -> None:
        state = self._states.pop(key, None)
        if state is not None and state.phase is not None:
            metrics.TWINS.labels(phase=state.phase).dec()

    def __len__(self) -> int:
        return len(self._states)

    async def reconcile(self, key: TwinKey, trigger: str) -> ReconcileResult:
        """Bring one twin in line with its spec; input errors become conditions, not raises."""
        body = self.view.twin(key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return ReconcileResult()
        state = self._states.get(key) or self._states.setdefault(key, _resumed(body))
        started, outcome = time.monotonic(), "error"
        try:
            result = await self._reconcile(key, body, state, trigger)
            outcome = "degraded" if state.problems else "ok"
        except Exception as err:  # one twin's bug must not stop the others: Degraded, retried
            result = await self._crashed(key, body, state, err)
        finally:
            metrics.RECONCILES.labels(trigger=trigger, result=outcome).inc()
            metrics.RECONCILE_SECONDS.labels(trigger=trigger).observe(time.monotonic() - started)
        retryable = {"qdrant", "apply", "internal"} & state.problems.keys()
        state.failures = state.failures + 1 if retryable else 0
        if retryable:
            base = result.retry_after or self.collections.retry_seconds / 6
            result.retry_after = retry_delay(base, state.failures)
        await self.post(body, result.events)
        return result

    async def post(self, body: Mapping[str, Any], events: Sequence[Event]) -> None:
        """Post events on the twin; a failure to post is logged, never a reconcile failure."""
        for event in events:
            try:
                await self.kube.post_event(
                    event_for(dict(body), event.type, event.reason, event.message, self._clock())
                )
            except KubeError as err:
                logger.warning(
                    "event not posted", extra={"reason": event.reason, "error": str(err)}
                )

    async def _reconcile(
        self, key: TwinKey, body: Mapping[str, Any], state: TwinState, trigger: str
    ) -> ReconcileResult:
        result = ReconcileResult()
        generation = int((body.get("metadata") or {}).get("generation", 0))
        try:
            twin = Twin.from_body(body)
        except InvalidInput as err:
            state.problems = {"spec": Problem("InvalidSpec", str(err))}
            state.observed_generation = generation
            await self._report(key, body=body, state=state, twin=None, live={}, result=result)
            return result
        state.problems.pop("spec", None)
        state.problems.pop("internal", None)
        if unhonoured := render.unhonoured(twin):  # accepted by an older schema, not served
            state.problems["spec"] = Problem("UnsupportedSpec", "; ".join(unhonoured))
        if state.namespace_terminating:
            return result
        live = newest(self.view.children(key))
        if not twin.spec.suspend:
            await self.children.reconcile(twin, state, live, result)
            if trigger != "child":  # a child's watch event never needs Qdrant
                await self.collections.ensure(twin, state, result)
        state.observed_generation = twin.generation
        await self._report(key, body=body, state=state, twin=twin, live=live, result=result)
        return result

    async def _crashed(
        self, key: TwinKey, body: Mapping[str, Any], state: TwinState, err: BaseException
    ) -> ReconcileResult:
        """An unexpected failure: Degraded with the reason, one Warning, a backed-off retry."""
        logger.warning(
            "reconcile failed", exc_info=err if not isinstance(err, KubeError) else None,
            extra={"twin": "/".join(key), "error": str(err)},
        )  # fmt: skip
        metrics.ERRORS.labels(reason="ReconcileFailed").inc()
        state.problems["internal"] = Problem("ReconcileFailed", f"{type(err).__name__}: {err}")
        state.rendered_for = None
        result = ReconcileResult()
        try:
            live = newest(self.view.children(key))
            await self._report(key, body=body, state=state, twin=None, live=live, result=result)
        except KubeError as again:  # the API server is the problem: the retry will report
            logger.warning("status not written", extra={"twin": "/".join(key), "error": str(again)})
            result.events.append(Event("Warning", "ReconcileFailed", str(err)))
        return result

    # ------------------------------------------------------------------ status

    def observe(
        self,
        body: Mapping[str, Any],
        state: TwinState,
        twin: Twin | None,
        live: Mapping[tuple[str, str], LiveChild],
    ) -> status.Observation:
        name = str((body.get("metadata") or {}).get("name", ""))
        rollouts: dict[Component, Rollout | None] = {}
        for component in COMPONENTS:
            workload = (render.workload_kind(component), naming.workload_name(name, component))
            child = live.get(workload)
            rollouts[component] = child.rollout if child is not None else None
        hashes: dict[Component, str] = {}
        if twin is not None:
            fresh = state.rendered_for == (twin.uid, twin.generation) and state.config_hashes
            hashes = dict(state.config_hashes) if fresh else {
                c: render_config.config_hash(twin, c, self.ctx) for c in COMPONENTS
            }  # fmt: skip
        secret = None
        if twin is not None:
            ref = twin.spec.gateway.auth.api_key_secret_ref
            secret = ref.name if ref is not None else naming.gateway_api_key_secret(twin)
        return status.Observation(
            generation=int((body.get("metadata") or {}).get("generation", 0)),
            observed_generation=state.observed_generation,
            rollouts=rollouts,
            expected_hashes=hashes,
            problems=list(state.problems.values()),
            collections=state.collections,
            collections_ready=state.collections_key is not None,
            suspended=twin is not None and twin.spec.suspend,
            gateway_api_key_secret=secret,
        )

    async def _report(
        self,
        key: TwinKey,
        *,
        body: Mapping[str, Any],
        state: TwinState,
        twin: Twin | None,
        live: Mapping[tuple[str, str], LiveChild],
        result: ReconcileResult,
    ) -> None:
        """Write the status if it changed; add the events its changes call for."""
        stored = TwinStatus.from_body(body)
        new = status.build(
            self.observe(body, state, twin, live), state.last_status or stored, self._now()
        )
        self._note_changes(state, new, result, body)
        if new.phase != state.phase:
            if state.phase is not None:
                metrics.TWINS.labels(phase=state.phase).dec()
            metrics.TWINS.labels(phase=new.phase).inc()
            state.phase = new.phase
        if new in (state.last_status, stored):
            state.last_status = new
            return
        try:
            await self.kube.patch_twin_status(key[0], key[1], new.wire())
        except KubeError as err:
            if err.status == 404:  # deleted meanwhile
                return
            raise
        state.last_status = new

    @staticmethod
    def _note_changes(
        state: TwinState, new: TwinStatus, result: ReconcileResult, body: Mapping[str, Any]
    ) -> None:
        ready = new.condition("Ready")
        is_ready = ready is not None and ready.status == "True"
        if is_ready and state.ready is not True:
            result.events.append(Event("Normal", "Ready", "All components are ready."))
            if state.new_twin:
                _observe_ready_duration(body)
                state.new_twin = False
        state.ready = is_ready
        degraded = new.condition("Degraded")
        if degraded is not None and degraded.status == "True":
            mark = (degraded.reason, degraded.message)
            if state.warned is None or state.warned[0] != mark[0]:
                result.events.append(Event("Warning", degraded.reason, degraded.message))
            state.warned = mark
        else:
            state.warned = None


def _resumed(body: Mapping[str, Any]) -> TwinState:
    """A twin first seen by this process: what its stored status already told the world is
    not news (no second Ready or CollectionsEnsured event after an operator restart)."""
    stored = TwinStatus.from_body(body)
    state = TwinState(new_twin=stored is None)
    if stored is None:
        return state
    ready, degraded = stored.condition("Ready"), stored.condition("Degraded")
    state.ready = ready is not None and ready.status == "True"
    state.collections = stored.collections
    meta = body.get("metadata") or {}
    if stored.observed_generation == meta.get("generation") and ready is not None:
        state.created = (str(meta.get("uid", "")), stored.observed_generation)
    if degraded is not None and degraded.status == "True":
        state.warned = (degraded.reason, degraded.message)
    return state


def _observe_ready_duration(body: Mapping[str, Any]) -> None:
    """Creation to first Ready, for twins this process saw from the start."""
    created = (body.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return
    started = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    metrics.READY_SECONDS.observe((dt.datetime.now(dt.UTC) - started).total_seconds())
