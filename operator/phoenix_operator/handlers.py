"""kopf handlers: module-level, small, each one hands a twin to the ReconcileQueue.

- Two indices (``twins``, ``children``) hold what the watches saw. kopf lists every
  indexed kind completely before it runs any other handler, so after a restart no
  twin is ever compared against a partial view of its children.
- The twin's resume/create/update handlers queue it and return; the queue retries
  a failed reconcile with backoff while Qdrant or the API server fails.
- A child's watch event requests a reconcile of its twin unless it is the echo of
  the operator's own write; requests for a waiting twin coalesce, so a burst of
  events costs one reconcile.
- ``resync``, a kopf timer per twin, re-checks it every ``PHOENIX_OPERATOR_RESYNC_SECONDS``
  (no render and no write while converged).

The finalizer ``phoenixtwin.io/finalizer`` is only put on twins whose
``memory.reclaimPolicy`` is Delete (the only ones with cleanup to do), so
deleting any other twin never waits for the operator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from phoenix_common.errors import DependencyUnavailable
from phoenix_common.metrics import serve_metrics
from phoenix_operator import kopf_bodies, kube, metrics, naming
from phoenix_operator.api import FINALIZER, GROUP, KIND, PLURAL, VERSION
from phoenix_operator.reconcile import children
from phoenix_operator.reconcile.children import LiveChild, TwinKey
from phoenix_operator.reconcile.collections import Collections
from phoenix_operator.reconcile.qdrant import QdrantConnector
from phoenix_operator.reconcile.queue import ReconcileQueue
from phoenix_operator.reconcile.twins import Reconciler
from phoenix_operator.render.common import RenderContext
from phoenix_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

CHILD_RESOURCES = (
    ("", "v1", "serviceaccounts"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "services"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "networkpolicies"),
)
CHILD_KINDS = frozenset((group, plural) for group, _version, plural in CHILD_RESOURCES)
MANAGED = {naming.MANAGED_BY_LABEL: naming.MANAGER}
# What kopf keeps of each child as it arrives (kopf_bodies): metadata plus its LiveChild.
PROJECTIONS: dict[tuple[str, str], kopf_bodies.Projection] = {
    kind: children.projected for kind in CHILD_KINDS
}


@dataclass(frozen=True)
class IndexView:
    """The reconciler's ClusterView on kopf's two indices (captured at start-up)."""

    twin_index: kopf.Index[TwinKey, dict[str, Any]]
    child_index: kopf.Index[TwinKey, LiveChild]

    def twin(self, key: TwinKey) -> Mapping[str, Any] | None:
        found = self.twin_index.get(key)
        return next(iter(found), None) if found else None

    def children(self, key: TwinKey) -> Sequence[LiveChild]:
        found = self.child_index.get(key)
        return list(found) if found else []


@dataclass
class Operator:
    """What the handlers share, kept in kopf's ``memo``: built on start-up, closed on cleanup."""

    settings: OperatorSettings
    client: kube.LightkubeClient
    reconciler: Reconciler
    queue: ReconcileQueue


def _key(body: Mapping[str, Any]) -> TwinKey:
    meta = body["metadata"]
    return str(meta["namespace"]), str(meta["name"])


def _operator(memo: kopf.Memo) -> Operator:
    operator = memo.get("operator")
    if not isinstance(operator, Operator):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return operator


# ---------------------------------------------------------------------- indices


async def twins(body: kopf.Body, **_: Any) -> Any:
    """Index ``twins``: (namespace, name) -> the twin (without managedFields)."""
    compact = {k: v for k, v in body.items() if k != "metadata"}
    compact["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {_key(body): compact}


async def children_index(body: kopf.Body, **_: Any) -> Any:
    """Index ``children``: (namespace, twin) -> each labelled child, compacted (LiveChild)."""
    twin = children.twin_of(body)
    if twin is None:
        return None
    return {twin: children.of(body)}


# ---------------------------------------------------------------------- lifecycle


async def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    return await kube.kopf_credentials(settings)


def start_operator(
    settings: OperatorSettings,
    view: IndexView,
    client: kube.LightkubeClient,
) -> Operator:
    """Wire the reconciler and its queue (separate from kopf for tests and embedding)."""
    connector = QdrantConnector(
        default_url=settings.default_qdrant_url,
        default_api_key=(
            settings.default_qdrant_api_key.get_secret_value()
            if settings.default_qdrant_api_key
            else None
        ),
        local_path=settings.qdrant_local_path,
        timeout=settings.qdrant_timeout_seconds,
        default_tenancy=settings.default_qdrant_tenancy,
    )
    reconciler = Reconciler(
        view,
        client,
        Collections(
            client,
            connector,
            retry_seconds=settings.qdrant_retry_seconds,
            reclaim_max_attempts=settings.reclaim_max_attempts,
        ),
        RenderContext(
            image_prefix=settings.image_prefix,
            image_tag=settings.image_tag,
            default_qdrant_url=settings.default_qdrant_url,
            default_qdrant_tenancy=settings.default_qdrant_tenancy,
        ),
    )
    queue = ReconcileQueue(reconciler.reconcile, workers=settings.max_concurrent_reconciles)
    queue.start()
    return Operator(settings, client, reconciler, queue)


async def startup(memo: kopf.Memo, **kwargs: Any) -> None:
    settings: OperatorSettings = memo["settings"]
    serve_metrics(settings.metrics_port)
    client = kube.LightkubeClient.from_environment(
        timeout=settings.request_timeout_seconds,
        attempts=settings.write_attempts,
        connections=settings.api_connections,
    )
    view = IndexView(twin_index=kwargs["twins"], child_index=kwargs["children"])
    memo["operator"] = start_operator(settings, view, client)


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    operator = memo.get("operator")
    if isinstance(operator, Operator):
        await operator.queue.stop()
        await operator.client.close()


def twin_count(memo: kopf.Memo, **_: Any) -> int:
    operator = memo.get("operator")
    return len(operator.reconciler) if isinstance(operator, Operator) else 0


# ---------------------------------------------------------------------- twins


async def reconcile_twin(body: kopf.Body, reason: str, memo: kopf.Memo, **_: Any) -> None:
    """create / update / resume: queue the twin and return at once.

    1,000 twins created together, or resumed after a restart, would otherwise keep
    1,000 kopf invocations (cause, body, patch, loggers) alive while the queue's 8
    workers build every twin's lasting state beside them; the memory they free
    afterwards stays in the process (at 1,000 twins: 24 MiB after a restart, 8 MiB
    once converged; docs/operator.md, *The restart's peak, fourth round*). The queue
    retries a failed reconcile itself, with the reconciler's growing delay, and the
    twin's Degraded condition and Warning event say why.
    """
    _operator(memo).queue.request(_key(body), str(reason))


async def resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The periodic level check (a kopf timer): queue the twin; no write while converged."""
    key = _key(body)
    operator = _operator(memo)
    current = operator.reconciler.view.twin(key)
    if current is None or current["metadata"].get("uid") != body["metadata"].get("uid"):
        # The twin is gone (deleted without a finalizer, so kopf never stops this timer).
        raise asyncio.CancelledError
    operator.queue.request(key, "resync")


async def twin_deleted(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Forget a deleted twin's state (its children go through KCM's garbage collector)."""
    if type == "DELETED":
        operator = memo.get("operator")
        if isinstance(operator, Operator):
            operator.reconciler.forget(_key(body))


async def reclaim(body: kopf.Body, retry: int, memo: kopf.Memo, **_: Any) -> None:
    """on.delete of twins with reclaimPolicy Delete: remove their collections, boundedly."""
    operator = _operator(memo)
    try:
        result = await operator.reconciler.collections.reclaim(dict(body), retry)
    except DependencyUnavailable as err:
        delay = min(300.0, operator.settings.qdrant_retry_seconds / 6 * 2 ** min(retry, 10))
        raise kopf.TemporaryError(f"{err}; retrying in {delay:.0f}s", delay=delay) from None
    await operator.reconciler.post(body, result.events)


def _reclaims(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("memory") or {}).get("reclaimPolicy") == "Delete")


# ---------------------------------------------------------------------- children


async def child_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A labelled child changed: reconcile its twin unless this is our own write's echo."""
    twin = children.twin_of(body)
    operator = memo.get("operator")
    if twin is None or not isinstance(operator, Operator):
        return
    state = operator.reconciler.state(twin)
    # Not reconciled in this process yet: its resume handler will. (kopf_barrier relies on
    # this: a child from the initial listing does not wait for the index barrier.)
    if state is None:
        return
    child = children.of(body)
    deleted = type == "DELETED"
    state.seen(child.key, child.revision, deleted=deleted)
    echo = not deleted and state.verified.get(child.key) == child.digest
    if echo and child.rollout is None:  # a workload's status still feeds the twin's
        return
    if operator.queue.request(twin, "child", settle=operator.settings.child_settle_seconds):
        metrics.CHILD_EVENTS.labels(result="queued").inc()
    else:
        metrics.CHILD_EVENTS.labels(result="coalesced").inc()


# ---------------------------------------------------------------------- registration


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register the module's handlers; intervals and limits come from ``settings``."""
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    kopf.on.probe(id="twins", registry=registry)(twin_count)
    kopf.index(GROUP, VERSION, PLURAL, id="twins", registry=registry)(twins)
    for group, version, plural in CHILD_RESOURCES:
        kopf.index(group, version, plural, id="children", labels=MANAGED, registry=registry)(
            children_index
        )
        kopf.on.event(
            group, version, plural, id=f"child-{plural}", labels=MANAGED, registry=registry
        )(child_changed)
    for decorate in (kopf.on.resume, kopf.on.create, kopf.on.update):
        decorate(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)(reconcile_twin)
    kopf.on.event(GROUP, VERSION, PLURAL, id="forget", registry=registry)(twin_deleted)
    kopf.on.delete(
        GROUP, VERSION, PLURAL, id="reclaim", when=_reclaims, backoff=5, registry=registry
    )(reclaim)
    kopf.timer(
        GROUP, VERSION, PLURAL, id="resync",
        interval=settings.resync_seconds, initial_delay=settings.resync_seconds, registry=registry,
    )(resync)  # fmt: skip
    _timers_without_finalizer(registry)


def _timers_without_finalizer(registry: kopf.OperatorRegistry) -> None:
    """kopf puts a finalizer on every object with a timer, so that it can stop the timer
    before the object goes. Here that would make deleting *any* twin wait for a running
    operator; the resync timer instead ends itself when its twin is gone (``resync``),
    and only ``reclaimPolicy: Delete`` twins carry the finalizer (for their on.delete)."""
    spawning = registry._spawning
    spawning._handlers[:] = [
        dataclasses.replace(h, requires_finalizer=False) for h in spawning._handlers
    ]


class TwinDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff-base (last handled configuration) of twins only.

    kopf builds an object's essence, a deep copy of the whole body, on every watch
    event of every kind, to detect changes for change handlers. Only twins have
    change handlers; the children (~21 per twin, several events each during a
    rollout) have index and event handlers only, which never read it. For them the
    essence is empty: about a tenth of the operator's CPU while it lists or creates
    children, with nothing that reads the copy.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        if body.get("apiVersion") != f"{GROUP}/{VERSION}" or body.get("kind") != KIND:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """kopf's settings: our own finalizer and annotation prefixes (none under kopf.zalando.org)."""
    config = kopf.OperatorSettings()
    config.persistence.finalizer = FINALIZER
    config.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    config.persistence.diffbase_storage = TwinDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    config.networking.request_timeout = settings.request_timeout_seconds
    config.posting.reporting_component = naming.MANAGER
    config.watching.server_timeout = 300
    config.watching.client_timeout = 310
    # Paginated initial lists: 20 children per twin make big first pages at 1,000 twins.
    config.watching.chunk_size = settings.list_chunk_size
    config.queueing.idle_timeout = settings.worker_idle_seconds
    # Watch only our own children (the API server filters; kopf never sees other Secrets),
    # and only this replica's shard of the twins when a selector is set.
    for group, _version, plural in CHILD_RESOURCES:
        config.watching.label_selectors[(group or "v1", plural)] = (
            f"{naming.MANAGED_BY_LABEL}={naming.MANAGER}"
        )
    if settings.twin_selector:
        config.watching.label_selectors[(GROUP, PLURAL)] = settings.twin_selector
    if settings.peering:
        config.peering.name = settings.peering
    return config
