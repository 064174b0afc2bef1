"""The only module that calls the Kubernetes API (kopf's own watching aside), through lightkube.

Children are written with server-side apply under one field manager with
``force=true``: the operator owns every field it renders and takes it back if
someone else changed it. Every write is counted
(``phoenix_operator_api_writes_total``) and retried on transient failures
(429 with its Retry-After, 5xx, connection errors) with exponential backoff;
what still fails surfaces as a ``KubeError`` the reconciler turns into a
Degraded condition.

Why lightkube (figures in docs/operator.md): typed, lazily imported resource
classes (+6 MiB and ~0.5 s at import, against +37 MiB / ~2 s for
kubernetes_asyncio and +19 MiB / ~1.6 s for kr8s), server-side apply with field
manager, force and dry-run, paginated lists, exec-plugin credentials (EKS, GKE,
AKS, OIDC through kubelogin) with re-login on 401, and rotating service-account
tokens re-read on 401. It does not retry, hence the tenacity policy here.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import httpx2
import kopf
from lightkube import ApiError, AsyncClient
from lightkube.config.client_adapter import ExecAuth, verify_cluster
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Event, Secret, Service, ServiceAccount
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import CascadeType, PatchType
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from phoenix_operator import metrics
from phoenix_operator.api import GROUP, KIND, PLURAL, VERSION
from phoenix_operator.kube_transport import AiohttpTransport
from phoenix_operator.naming import MANAGER

Manifest = dict[str, Any]
T = TypeVar("T")

PhoenixTwinResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
RESOURCES: dict[tuple[str, str], Any] = {
    ("v1", "ServiceAccount"): ServiceAccount,
    ("v1", "ConfigMap"): ConfigMap,
    ("v1", "Secret"): Secret,
    ("v1", "Service"): Service,
    ("apps/v1", "Deployment"): Deployment,
    ("apps/v1", "StatefulSet"): StatefulSet,
    ("policy/v1", "PodDisruptionBudget"): PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): NetworkPolicy,
}
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


class KubeError(Exception):
    """The API server refused or failed a request; ``status`` is its HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def namespace_terminating(self) -> bool:
        """The namespace is being deleted: nothing to repair, everything is going away."""
        return self.status == 403 and "being terminated" in str(self)


class KubeClient(Protocol):
    """What the reconciler needs from the API server (tests substitute an in-memory one)."""

    async def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply as the operator's field manager, forcing conflicts."""

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        """One object, or None when it does not exist."""

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete a child; already gone counts as done."""

    async def patch_twin_status(self, namespace: str, name: str, status: Manifest) -> None:
        """Merge-patch a twin's status subresource (the operator is its only writer)."""

    async def post_event(self, event: Manifest) -> None:
        """Create a core/v1 Event (see ``event_for``)."""


def event_for(twin: Manifest, type_: str, reason: str, message: str, now: dt.datetime) -> Manifest:
    """A core/v1 Event about ``twin``, as kubectl describe and dashboards read them."""
    meta = twin["metadata"]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": MANAGER},
        "reportingComponent": MANAGER,
        "reportingInstance": MANAGER,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def _transient(err: BaseException) -> bool:
    if isinstance(err, ApiError):
        return err.response is not None and err.response.status_code in TRANSIENT_STATUS
    return isinstance(err, httpx2.TransportError)


def retry_after(err: BaseException | None) -> float | None:
    """Seconds the server asked to wait (Retry-After, in seconds or as an HTTP date)."""
    if not isinstance(err, ApiError) or err.response is None:
        return None
    value = err.response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class Backoff:
    """Exponential backoff (base, 2 x base, ... capped), or the server's Retry-After when given."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after(error)
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER)
        return float(min(self.cap, self.base * 2 ** (state.attempt_number - 1)))


def _error(err: BaseException, what: str) -> KubeError:
    if isinstance(err, ApiError):
        status = err.response.status_code if err.response is not None else 0
        return KubeError(status, f"{what}: {err.status.message or err}")
    return KubeError(0, f"{what}: {type(err).__name__}: {err}")


class LightkubeClient:
    """``KubeClient`` on a lightkube ``AsyncClient``, with retries on every call."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        backoff_cap: float = 10.0,
    ) -> None:
        self._client = client
        self._attempts = attempts
        self._wait = Backoff(backoff_seconds, backoff_cap)

    @classmethod
    def from_environment(
        cls, *, timeout: float, attempts: int, connections: int
    ) -> LightkubeClient:
        """In a pod: its service account; elsewhere: KUBECONFIG (exec plugins included).

        Requests go over aiohttp (``kube_transport``) on at most ``connections`` kept-alive
        connections. httpx's own pool (100 connections, 20 kept) made a burst of applies
        open and close TLS connections and probe every idle one on each request, and its
        HTTP/1.1 over anyio cost several times aiohttp's CPU per request (docs/operator.md).
        """
        config = KubeConfig.from_env()
        single = config.get()
        if single is None or single.user is None:
            raise ConfigError("the kubeconfig names no current context with a user")
        transport = AiohttpTransport(
            verify_cluster(single.cluster, single.user, single.abs_file), connections=connections
        )
        client = AsyncClient(
            config,
            timeout=httpx2.Timeout(timeout),
            field_manager=MANAGER,
            transport=transport,
        )
        return cls(client, attempts=attempts)

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                stop=stop_after_attempt(self._attempts),
                wait=self._wait,
                reraise=True,
            ):
                with attempt:
                    return await call()
        except (ApiError, httpx2.HTTPError) as err:
            raise _error(err, what) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def apply(self, manifest: Manifest) -> Manifest:
        meta = manifest["metadata"]
        resource = RESOURCES[(manifest["apiVersion"], manifest["kind"])]
        metrics.API_WRITES.labels(verb="apply", kind=manifest["kind"]).inc()
        applied = await self._call(
            f"apply {manifest['kind']} {meta['name']}",
            lambda: self._client.patch(
                resource,
                meta["name"],
                manifest,
                namespace=meta["namespace"],
                patch_type=PatchType.APPLY,
                field_manager=MANAGER,
                force=True,
            ),
        )
        body: Manifest = applied.to_dict()
        return body

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        resource = RESOURCES[(api_version, kind)]
        try:
            found = await self._call(
                f"get {kind} {name}", lambda: self._client.get(resource, name, namespace=namespace)
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        body: Manifest = found.to_dict()
        return body

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        resource = RESOURCES[(api_version, kind)]
        metrics.API_WRITES.labels(verb="delete", kind=kind).inc()
        try:
            await self._call(
                f"delete {kind} {name}",
                lambda: self._client.delete(
                    resource, name, namespace=namespace, cascade=CascadeType.BACKGROUND
                ),
            )
        except KubeError as err:
            if err.status != 404:
                raise

    async def patch_twin_status(self, namespace: str, name: str, status: Manifest) -> None:
        metrics.API_WRITES.labels(verb="patch", kind=f"{KIND}/status").inc()
        await self._call(
            f"patch {KIND} {name} status",
            lambda: self._client.patch(
                PhoenixTwinResource.Status,
                name,
                {"status": status},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            ),
        )

    async def post_event(self, event: Manifest) -> None:
        metrics.API_WRITES.labels(verb="create", kind="Event").inc()
        await self._call(
            f"create Event {event['reason']}",
            lambda: self._client.create(Event.from_dict(event)),
        )


async def kopf_credentials(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """kopf's login: its own for a pod's service account and plain kubeconfigs; for a
    kubeconfig user with an exec plugin (EKS, GKE, AKS, kubelogin for OIDC), the plugin's
    token, obtained through lightkube. kopf calls this again when the API answers 401."""
    try:
        config = KubeConfig.from_env().get()
    except ConfigError:
        config = None
    user = config.user if config is not None else None
    if config is None or user is None or user.exec is None:
        return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
            settings=settings
        )
    flow = ExecAuth(user.exec).async_auth_flow(httpx2.Request("GET", config.cluster.server))
    request = await anext(flow)
    await flow.aclose()
    scheme, _, token = request.headers["Authorization"].partition(" ")
    cluster = config.cluster
    return kopf.ConnectionInfo(
        server=cluster.server,
        ca_path=config.abs_file(cluster.certificate_auth) if cluster.certificate_auth else None,
        ca_data=cluster.certificate_auth_data,
        insecure=cluster.insecure,
        scheme=scheme,
        token=token,
        default_namespace=config.namespace,
    )
