"""kopf handlers: each one feeds the cache and calls the reconciler; nothing else lives here.

Triggers, all running the same level-based reconcile:

- the twin's create/update/resume (kopf change handlers: TemporaryError backoff
  while Qdrant is unreachable);
- any watch event of a labelled child (deleted or edited children come back
  within a second; a Deployment's status change updates the twin's status);
- a periodic resync of every twin (``PHOENIX_OPERATOR_RESYNC_SECONDS``), which
  writes nothing while twins are converged.

The finalizer ``phoenixtwin.io/finalizer`` is only put on twins whose
``memory.reclaimPolicy`` is Delete (the only ones with cleanup to do), so
deleting any other twin never waits for the operator.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from phoenix_common.errors import DependencyUnavailable
from phoenix_common.metrics import serve_metrics
from phoenix_operator import kube, metrics, naming
from phoenix_operator.api import FINALIZER, GROUP, PLURAL, VERSION
from phoenix_operator.reconcile.cache import Cache, TwinKey
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.reconcile.twins import Outcome, Reconciler
from phoenix_operator.render.common import RenderContext
from phoenix_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

CHILD_RESOURCES = (
    ("", "v1", "serviceaccounts"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "services"),
    ("apps", "v1", "deployments"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "networkpolicies"),
)
MAX_RETRY_DELAY = 300.0


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """kopf's settings: our own finalizer and annotation prefixes (none under kopf.zalando.org)."""
    config = kopf.OperatorSettings()
    config.persistence.finalizer = FINALIZER
    config.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    config.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    config.networking.request_timeout = settings.request_timeout_seconds
    config.posting.reporting_component = naming.MANAGER
    config.watching.server_timeout = 300
    config.watching.client_timeout = 310
    # Watch only our own children: the API server filters, kopf never sees other Secrets.
    for group, _version, plural in CHILD_RESOURCES:
        config.watching.label_selectors[(group or "v1", plural)] = (
            f"{naming.MANAGED_BY_LABEL}={naming.MANAGER}"
        )
    if settings.peering:
        config.peering.name = settings.peering
    return config


def backoff(base: float, retry: int) -> float:
    """Exponential retry delay for the ``retry``-th retry, capped at five minutes."""
    return float(min(MAX_RETRY_DELAY, base * 2 ** min(retry, 10)))


def credentials(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """kopf's own login (the pod's service account, else KUBECONFIG), shared with kube.Kube."""
    return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )


def _key(body: kopf.Body | dict[str, Any]) -> TwinKey:
    meta = body["metadata"]
    return str(meta["namespace"]), str(meta["name"])


def _reclaims(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("memory") or {}).get("reclaimPolicy") == "Delete")


@dataclass
class State:
    """What the handlers share: built in on.startup, torn down in on.cleanup."""

    settings: OperatorSettings
    cache: Cache = field(default_factory=Cache)
    reconciler: Reconciler | None = None
    resync: asyncio.Task[None] | None = None

    def require(self) -> Reconciler:
        if self.reconciler is None:
            raise kopf.TemporaryError("the operator is still starting", delay=1)
        return self.reconciler


def post(body: dict[str, Any] | kopf.Body, outcome: Outcome) -> None:
    """Post the outcome's events on the twin (kopf sends them in the background)."""
    target = body if isinstance(body, kopf.Body) else kopf.Body(cast(kopf.RawBody, body))
    for event in outcome.events:
        try:
            kopf.event(target, type=event.type, reason=event.reason, message=event.message)
        except LookupError:  # outside kopf's context (shutting down): the log line must do
            logger.info("event not posted", extra={"reason": event.reason})


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> State:
    """Register every handler on ``registry``; return their shared state."""
    state = State(settings)

    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        return credentials(settings)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        serve_metrics(state.settings.metrics_port)
        info = credentials(settings)
        if info is None:
            raise kopf.PermanentError("no credentials: neither in a pod nor a KUBECONFIG")
        client = kube.Kube(info, timeout=state.settings.request_timeout_seconds)
        state.reconciler = Reconciler(
            client,
            QdrantConnector(
                default_url=state.settings.default_qdrant_url,
                default_api_key=(
                    state.settings.default_qdrant_api_key.get_secret_value()
                    if state.settings.default_qdrant_api_key
                    else None
                ),
                local_path=state.settings.qdrant_local_path,
                timeout=state.settings.qdrant_timeout_seconds,
                default_tenancy=state.settings.default_qdrant_tenancy,
            ),
            RenderContext(
                image_prefix=state.settings.image_prefix,
                image_tag=state.settings.image_tag,
                default_qdrant_url=state.settings.default_qdrant_url,
                default_qdrant_tenancy=state.settings.default_qdrant_tenancy,
            ),
            state.cache,
            qdrant_retry_seconds=state.settings.qdrant_retry_seconds,
            reclaim_max_attempts=state.settings.reclaim_max_attempts,
            max_concurrent=state.settings.max_concurrent_reconciles,
        )
        state.resync = asyncio.create_task(resync_forever(state))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        if state.resync is not None:
            state.resync.cancel()
        if state.reconciler is not None:
            await state.reconciler.kube.close()

    @kopf.on.probe(id="twins", registry=registry)
    def twin_count(**_: Any) -> int:
        return len(state.cache.twins)

    @kopf.on.event(GROUP, VERSION, PLURAL, id="twin-cache", registry=registry)
    async def twin_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            if state.reconciler is not None:
                state.reconciler.forget(_key(body))
            return
        state.cache.put_twin(body)

    @kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile", backoff=5, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile", backoff=5, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile", backoff=5, registry=registry)
    async def reconcile_twin(
        body: kopf.Body, reason: str, retry: int, logger: kopf.Logger, **_: Any
    ) -> None:
        reconciler = state.require()
        state.cache.put_twin(body)
        outcome = await reconciler.reconcile(
            _key(body), trigger=str(reason), qdrant=True, refresh=str(reason) == "resume"
        )
        post(body, outcome)
        if outcome.retry_after is not None:
            delay = backoff(outcome.retry_after, retry)
            raise kopf.TemporaryError(f"Qdrant unreachable; retrying in {delay:.0f}s", delay=delay)

    @kopf.on.delete(
        GROUP, VERSION, PLURAL, id="reclaim", when=_reclaims, backoff=5, registry=registry
    )
    async def reclaim(body: kopf.Body, retry: int, **_: Any) -> None:
        try:
            outcome = await state.require().finalize(dict(body), retry)
        except DependencyUnavailable as err:
            delay = backoff(settings.qdrant_retry_seconds / 6, retry)
            raise kopf.TemporaryError(f"{err}; retrying in {delay:.0f}s", delay=delay) from None
        post(body, outcome)

    for group, version, plural in CHILD_RESOURCES:

        @kopf.on.event(
            group,
            version,
            plural,
            id=f"child-{plural}",
            labels={naming.MANAGED_BY_LABEL: naming.MANAGER},
            registry=registry,
        )
        async def child_event(type: str | None, body: kopf.Body, **_: Any) -> None:
            deleted = type == "DELETED"
            key = state.cache.drop_child(body) if deleted else state.cache.put_child(body)
            if key is None or key not in state.cache.twins or state.reconciler is None:
                return
            try:
                outcome = await state.reconciler.reconcile(key, trigger="child", qdrant=False)
            except (kube.KubeError, DependencyUnavailable) as err:
                logger.warning("child-triggered reconcile failed", extra={"error": str(err)})
                return
            post(state.cache.twins.get(key, {}), outcome)

    return state


async def resync_forever(state: State) -> None:
    """Re-check every known twin each interval (level-based safety net; no writes if converged)."""
    limit = asyncio.Semaphore(8)

    async def one(key: TwinKey) -> None:
        reconciler = state.require()
        async with limit:
            try:
                outcome = await reconciler.reconcile(key, trigger="resync", qdrant=True)
            except kube.KubeError as err:
                logger.warning("resync failed", extra={"twin": "/".join(key), "error": str(err)})
                return
            except Exception:  # one twin's bug must not end the resync of all the others
                metrics.ERRORS.labels(reason="ResyncCrashed").inc()
                logger.exception("resync of a twin crashed", extra={"twin": "/".join(key)})
                return
        body = state.cache.twins.get(key)
        if body is not None:
            post(body, outcome)

    while True:
        await asyncio.sleep(state.settings.resync_seconds)
        phases: dict[str, int] = {}
        for body in state.cache.twins.values():
            phase = str((body.get("status") or {}).get("phase", "Pending"))
            phases[phase] = phases.get(phase, 0) + 1
        for phase in ("Pending", "Progressing", "Ready", "Degraded", "Suspended"):
            metrics.TWINS.labels(phase=phase).set(phases.get(phase, 0))
        await asyncio.gather(*(one(key) for key in list(state.cache.twins)))
        release_memory()


def release_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it after a burst of reconciles)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return
    libc.malloc_trim(0)
