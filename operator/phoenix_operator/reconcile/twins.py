"""Reconcile one twin: render, compare with the cache, apply what differs, prune, report.

One reconcile per twin at a time (a lock per twin); any trigger (the twin's
own changes, a child's watch event, the periodic resync) runs the same
level-based function, so the result does not depend on which edge fired.
A converged twin costs no API write: children are applied only when the
cached live object does not contain the rendering, and status only when it
changed.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phoenix_common.errors import DependencyUnavailable, InvalidInput
from phoenix_operator import kube as kube_api
from phoenix_operator import metrics, naming, render
from phoenix_operator.api import COMPONENTS, SKIP_RECLAIM_ANNOTATION, Component, SecretKeyRef, Twin
from phoenix_operator.reconcile import drift, status
from phoenix_operator.reconcile.cache import Cache, ChildKey, TwinKey
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.render.common import Manifest, RenderContext, stable_hash

logger = logging.getLogger(__name__)

# Applied first, so Deployments never start before the config they read exists.
_WORKLOAD_KINDS = frozenset({"Deployment", "PodDisruptionBudget"})


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the twin (the handler posts it)."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None  # Qdrant is unreachable: retry the twin's handler later


@dataclass
class Runtime:
    """What the operator remembers about one twin between reconciles (lost on restart)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    problems: dict[str, status.Problem] = field(default_factory=dict)
    collections: list[str] = field(default_factory=list)
    collections_key: str | None = None
    observed_generation: int = 0
    last_status: dict[str, Any] | None = None
    ready: bool | None = None
    warned: set[tuple[str, str]] = field(default_factory=set)
    # The last rendering, reused while the twin's uid, generation and key are unchanged:
    # child events arrive by the thousand and rendering is the costly part of a reconcile.
    namespace_terminating: bool = False  # everything is going away: stop re-applying
    new_twin: bool | None = None  # first seen without a status: created while we watched
    rendered_for: tuple[str, int, str | None] | None = None
    rendered: list[Manifest] = field(default_factory=list)
    hashes: dict[Component, str] = field(default_factory=dict)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret_value(body: dict[str, Any] | None, key: str) -> str | None:
    data = (body or {}).get("data") or {}
    if key not in data:
        return None
    return base64.b64decode(data[key]).decode()


class Reconciler:
    """Holds the cache, the per-twin runtimes and the clients; reconciles twins on demand."""

    def __init__(
        self,
        kube: kube_api.Kube,
        qdrant: QdrantConnector,
        ctx: RenderContext,
        cache: Cache,
        *,
        qdrant_retry_seconds: float = 30.0,
        reclaim_max_attempts: int = 5,
        max_concurrent: int = 8,
        now: Callable[[], str] = _now,
    ) -> None:
        self.kube = kube
        self.qdrant = qdrant
        self.ctx = ctx
        self.cache = cache
        self.qdrant_retry_seconds = qdrant_retry_seconds
        self.reclaim_max_attempts = reclaim_max_attempts
        self._now = now
        self._runtimes: dict[TwinKey, Runtime] = {}
        # Bounds the burst when many twins change at once (memory and API server load).
        self._slots = asyncio.Semaphore(max_concurrent)

    def runtime(self, key: TwinKey) -> Runtime:
        return self._runtimes.setdefault(key, Runtime())

    def forget(self, key: TwinKey) -> None:
        self._runtimes.pop(key, None)
        self.cache.drop_twin(key)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(
        self, key: TwinKey, *, trigger: str, qdrant: bool, refresh: bool = False
    ) -> Outcome:
        """Bring one twin's children and status in line with its spec; never raises for input."""
        body = self.cache.twins.get(key)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return Outcome()
        runtime = self.runtime(key)
        async with runtime.lock, self._slots:
            started = time.monotonic()
            result = "ok"
            try:
                outcome = await self._reconcile(key, runtime, trigger, qdrant, refresh)
                if runtime.problems:
                    result = "degraded"
                return outcome
            except Exception:
                result = "error"
                raise
            finally:
                metrics.RECONCILES.labels(trigger=trigger, result=result).inc()
                metrics.RECONCILE_SECONDS.labels(trigger=trigger).observe(
                    time.monotonic() - started
                )

    async def _reconcile(
        self, key: TwinKey, runtime: Runtime, trigger: str, qdrant: bool, refresh: bool
    ) -> Outcome:
        outcome = Outcome()
        body = self.cache.twins.get(key)
        if body is None:  # deleted while this reconcile waited for its turn
            return outcome
        generation = int(body.get("metadata", {}).get("generation", 0))
        try:
            twin = Twin.from_body(body)
        except InvalidInput as err:
            runtime.problems = {"spec": status.Problem("InvalidSpec", str(err))}
            runtime.observed_generation = generation
            await self._write_status(key, runtime, body, None, outcome)
            return outcome
        runtime.problems.pop("spec", None)
        if refresh:
            await self._refresh_children(twin)
        if runtime.namespace_terminating:
            return outcome
        if not twin.spec.suspend:
            await self._apply_children(twin, runtime, outcome)
            if qdrant:
                await self._ensure_collections(twin, runtime, outcome)
        runtime.observed_generation = twin.generation
        await self._write_status(key, runtime, body, twin, outcome)
        return outcome

    async def _refresh_children(self, twin: Twin) -> None:
        """List the twin's children from the API (after a restart the cache may be partial)."""
        selector = f"{naming.TWIN_LABEL}={twin.name},{naming.MANAGED_BY_LABEL}={naming.MANAGER}"
        for api_version, kind in kube_api.PLURALS:
            if kind == "PhoenixTwin":
                continue
            for item in await self.kube.list(api_version, kind, twin.namespace, selector):
                self.cache.put_child(item)

    async def _gateway_api_key(self, twin: Twin, live: dict[ChildKey, dict[str, Any]]) -> str:
        """The generated key: read back from the Secret if it exists, generated once if not."""
        name = naming.gateway_api_key_secret(twin)
        value = _secret_value(live.get(("Secret", name)), naming.GATEWAY_API_KEY)
        if value is None:
            existing = await self.kube.get("v1", "Secret", twin.namespace, name)
            value = _secret_value(existing, naming.GATEWAY_API_KEY)
        return value or secrets.token_urlsafe(32)

    def desired(self, twin: Twin, api_key: str | None, runtime: Runtime) -> list[Manifest]:
        """The twin's children as applied (with their applied-hash), memoized per generation."""
        wanted = (twin.uid, twin.generation, api_key)
        if runtime.rendered_for != wanted:
            runtime.rendered = [
                drift.with_applied_hash(m) for m in render.children(twin, self.ctx, api_key)
            ]
            runtime.hashes = {c: render.config.config_hash(twin, c, self.ctx) for c in COMPONENTS}
            runtime.rendered_for = wanted
        return runtime.rendered

    async def _apply_children(self, twin: Twin, runtime: Runtime, outcome: Outcome) -> None:
        key = (twin.namespace, twin.name)
        live = self.cache.children_of(key)
        api_key = None
        if twin.spec.gateway.auth.api_key_secret_ref is None:
            api_key = await self._gateway_api_key(twin, live)
        desired = self.desired(twin, api_key, runtime)
        stale: list[tuple[Manifest, bool]] = []
        for manifest in desired:
            current = live.get(render.key(manifest))
            if drift.differences(manifest, current):
                # Deleted after this process reconciled the twin, or edited behind our back
                # (same rendering, different object): a drift to report. Otherwise an update.
                restored = (
                    runtime.observed_generation > 0
                    if current is None
                    else _applied_hash(current) == _applied_hash(manifest)
                )
                stale.append((manifest, restored))
        wanted = {render.key(m) for m in desired}
        extra = [
            body
            for child_key, body in list(live.items())
            if child_key not in wanted and _owned_by(body, twin.uid)
        ]
        failures: list[str] = []
        for group in (
            [s for s in stale if s[0]["kind"] not in _WORKLOAD_KINDS],
            [s for s in stale if s[0]["kind"] in _WORKLOAD_KINDS],
        ):
            results = await asyncio.gather(
                *(self._apply_one(manifest) for manifest, _ in group), return_exceptions=True
            )
            for (manifest, restored), result in zip(group, results, strict=True):
                kind, name = render.key(manifest)
                if isinstance(result, kube_api.KubeError):
                    if _namespace_terminating(result):
                        runtime.namespace_terminating = True
                    else:
                        failures.append(f"{kind} {name}: {result}")
                elif isinstance(result, BaseException):
                    raise result
                elif restored:
                    metrics.DRIFT_RESTORED.labels(kind=kind).inc()
                    outcome.events.append(
                        Event("Normal", "ChildRestored", f"Restored {kind} {name}.")
                    )
        failures += await self._prune(extra)
        if failures:
            runtime.problems["apply"] = status.Problem("ApplyFailed", "; ".join(failures))
            metrics.ERRORS.labels(reason="ApplyFailed").inc()
        else:
            runtime.problems.pop("apply", None)

    async def _prune(self, extra: list[dict[str, Any]]) -> list[str]:
        """Delete children the rendering no longer contains (a PDB at one replica, ...)."""
        failures = []
        for body in extra:
            meta = body["metadata"]
            try:
                await self.kube.delete(
                    body["apiVersion"], body["kind"], meta["namespace"], meta["name"]
                )
                self.cache.drop_child({**body, "metadata": {**meta, "resourceVersion": None}})
            except kube_api.KubeError as err:
                failures.append(f"delete {body['kind']} {meta['name']}: {err}")
        return failures

    async def _apply_one(self, manifest: Manifest) -> None:
        applied = await self.kube.apply(manifest)
        if applied:
            self.cache.put_child(applied)

    async def _secret_key(self, namespace: str, ref: SecretKeyRef | None) -> str | None:
        if ref is None:
            return None
        body = await self.kube.get("v1", "Secret", namespace, ref.name)
        return _secret_value(body, ref.key)

    async def _ensure_collections(self, twin: Twin, runtime: Runtime, outcome: Outcome) -> None:
        wanted_key = stable_hash(
            [
                self.qdrant.describe(twin),
                twin.spec.memory.namespaces,
                twin.spec.memory.embedding.dimension,
                self.qdrant.collections(twin),
            ]
        )
        if runtime.collections_key == wanted_key and "qdrant" not in runtime.problems:
            return
        try:
            api_key = await self._secret_key(
                twin.namespace, twin.spec.memory.qdrant.api_key_secret_ref
            )
            names = await self.qdrant.check(twin, api_key)
        except (DependencyUnavailable, kube_api.KubeError) as err:
            runtime.problems["qdrant"] = status.Problem("QdrantUnreachable", str(err))
            metrics.ERRORS.labels(reason="QdrantUnreachable").inc()
            outcome.retry_after = self.qdrant_retry_seconds
            return
        if "qdrant" in runtime.problems:
            outcome.events.append(Event("Normal", "QdrantReachable", "Qdrant is reachable again."))
        runtime.problems.pop("qdrant", None)
        if names != runtime.collections:  # first time, or the namespaces changed
            outcome.events.append(
                Event(
                    "Normal",
                    "CollectionsEnsured",
                    f"Qdrant reachable; memories go to {', '.join(names)} "
                    "(created by the memory service on first use).",
                )
            )
        runtime.collections = names
        runtime.collections_key = wanted_key

    # ------------------------------------------------------------------ status

    def observe(self, key: TwinKey, runtime: Runtime, twin: Twin | None) -> status.Observation:
        live = self.cache.children_of(key)
        deployments: dict[Component, dict[str, Any] | None] = {}
        hashes: dict[Component, str] = {}
        rendered = runtime.rendered_for
        fresh = (
            twin is not None
            and rendered is not None
            and rendered[:2] == (twin.uid, twin.generation)
        )
        for component in COMPONENTS:
            deployments[component] = live.get(("Deployment", f"{key[1]}-{component}"))
            if fresh:
                hashes[component] = runtime.hashes[component]
            elif twin is not None:
                hashes[component] = render.config.config_hash(twin, component, self.ctx)
        body = self.cache.twins.get(key, {})
        secret = None
        if twin is not None and twin.spec.gateway.auth.api_key_secret_ref is None:
            secret = naming.gateway_api_key_secret(twin)
        elif twin is not None and twin.spec.gateway.auth.api_key_secret_ref is not None:
            secret = twin.spec.gateway.auth.api_key_secret_ref.name
        return status.Observation(
            generation=int(body.get("metadata", {}).get("generation", 0)),
            observed_generation=runtime.observed_generation,
            deployments=deployments,
            expected_hashes=hashes,
            problems=list(runtime.problems.values()),
            collections=runtime.collections,
            collections_ready=runtime.collections_key is not None,
            suspended=twin is not None and twin.spec.suspend,
            gateway_api_key_secret=secret,
        )

    async def _write_status(
        self,
        key: TwinKey,
        runtime: Runtime,
        body: dict[str, Any],
        twin: Twin | None,
        outcome: Outcome,
    ) -> None:
        previous = body.get("status") or {}
        if runtime.new_twin is None:
            runtime.new_twin = not previous
        new = status.build(
            self.observe(key, runtime, twin), runtime.last_status or previous, self._now()
        )
        self._note_changes(runtime, new, outcome, body)
        if new == runtime.last_status or _same_status(new, previous):
            runtime.last_status = new
            return
        try:
            await self.kube.patch_twin_status(key[0], key[1], new)
        except kube_api.KubeError as err:
            if err.status == 404:
                return
            raise
        runtime.last_status = new

    def _note_changes(
        self, runtime: Runtime, new: dict[str, Any], outcome: Outcome, body: dict[str, Any]
    ) -> None:
        conditions = {c["type"]: c for c in new["conditions"]}
        ready = conditions["Ready"]["status"] == "True"
        if ready and runtime.ready is not True:
            outcome.events.append(Event("Normal", "Ready", "All components are ready."))
            if runtime.new_twin:
                _observe_ready_duration(body)
                runtime.new_twin = False
        runtime.ready = ready
        degraded = conditions["Degraded"]
        if degraded["status"] == "True":
            mark = (degraded["reason"], degraded["message"])
            if mark not in runtime.warned:
                runtime.warned = {mark}
                outcome.events.append(Event("Warning", degraded["reason"], degraded["message"]))
        else:
            runtime.warned = set()

    # ------------------------------------------------------------------ deletion

    async def finalize(self, body: dict[str, Any], attempt: int) -> Outcome:
        """Reclaim a deleted twin's collections (reclaimPolicy Delete), boundedly.

        Raises DependencyUnavailable while attempts remain; after the last one the
        twin is let go with a Warning event naming what was left in Qdrant.
        """
        outcome = Outcome()
        try:
            twin = Twin.from_body(body)
        except InvalidInput:
            return outcome
        if twin.spec.memory.reclaim_policy != "Delete":
            return outcome
        if twin.annotations.get(SKIP_RECLAIM_ANNOTATION) == "true":
            outcome.events.append(
                Event(
                    "Warning",
                    "ReclaimSkipped",
                    f"{SKIP_RECLAIM_ANNOTATION}=true: collections kept.",
                )
            )
            return outcome
        try:
            api_key = await self._secret_key(
                twin.namespace, twin.spec.memory.qdrant.api_key_secret_ref
            )
            names = await self.qdrant.delete(twin, api_key)
        except (DependencyUnavailable, kube_api.KubeError) as err:
            metrics.ERRORS.labels(reason="ReclaimFailed").inc()
            if attempt + 1 >= self.reclaim_max_attempts:
                left = ", ".join(self.qdrant.collections(twin))
                outcome.events.append(
                    Event(
                        "Warning",
                        "ReclaimAbandoned",
                        f"Gave up deleting collections after {attempt + 1} attempts ({err}); "
                        f"left in Qdrant: {left}.",
                    )
                )
                return outcome
            raise DependencyUnavailable(str(err)) from err
        outcome.events.append(
            Event("Normal", "CollectionsDeleted", f"Deleted collections: {', '.join(names)}.")
        )
        return outcome


def _applied_hash(body: dict[str, Any] | None) -> str | None:
    if body is None:
        return None
    annotations = body.get("metadata", {}).get("annotations") or {}
    value = annotations.get(naming.SPEC_HASH_ANNOTATION)
    return str(value) if value is not None else None


def _observe_ready_duration(body: dict[str, Any]) -> None:
    """Creation to first Ready, for twins this process saw from the start."""
    created = body.get("metadata", {}).get("creationTimestamp")
    if not created:
        return
    started = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    metrics.READY_SECONDS.observe((dt.datetime.now(dt.UTC) - started).total_seconds())


def _namespace_terminating(err: kube_api.KubeError) -> bool:
    """The twin's namespace is being deleted: nothing to repair, everything is going away."""
    return err.status == 403 and "being terminated" in str(err)


def _owned_by(body: dict[str, Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in body.get("metadata", {}).get("ownerReferences") or []
    )


def _same_status(new: dict[str, Any], old: dict[str, Any]) -> bool:
    return new == old
