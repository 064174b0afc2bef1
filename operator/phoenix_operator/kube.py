"""The only module that calls the Kubernetes API (kopf's own watching aside).

Children are written with server-side apply under one field manager, with
``force=true``: the operator owns every field it renders, and takes it back if
someone else changed it. Every write is counted (``phoenix_operator_api_writes_total``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from phoenix_operator import metrics
from phoenix_operator.api import API_VERSION, PLURAL
from phoenix_operator.naming import MANAGER

# (apiVersion, kind) -> plural; every kind a twin owns, plus the twin itself.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    (API_VERSION, "PhoenixTwin"): PLURAL,
}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
MERGE_CONTENT_TYPE = "application/merge-patch+json"


class KubeError(Exception):
    """The API server refused or failed a request; ``status`` is its HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _message(text: str, reason: str | None) -> str:
    try:
        return str(json.loads(text).get("message") or reason)
    except (TypeError, ValueError, AttributeError):
        return str(reason or text[:200])


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    plural = PLURALS[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    collection = f"{prefix}/namespaces/{namespace}/{plural}"
    return collection if name is None else f"{collection}/{name}"


SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
TOKEN_REFRESH_SECONDS = 60.0


class Kube:
    """A small aiohttp client bound to the operator's field manager.

    It authenticates with kopf's own credentials (kubeconfig or the pod's
    service account), so no Kubernetes client library is loaded at all.
    """

    def __init__(self, info: kopf.ConnectionInfo, *, timeout: float, connections: int = 16) -> None:
        self._server = info.server.rstrip("/")
        self._info = info
        self._token_read = time.monotonic()
        connector = aiohttp.TCPConnector(ssl=info.as_ssl_context(), limit=connections)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        token = self._info.token
        stale = time.monotonic() - self._token_read > TOKEN_REFRESH_SECONDS
        if token and stale and SERVICE_ACCOUNT_TOKEN.exists():
            # Bound service-account tokens rotate; the kubelet keeps the file current.
            token = SERVICE_ACCOUNT_TOKEN.read_text().strip()
            self._info = kopf.ConnectionInfo(**{**vars(self._info), "token": token})
            self._token_read = time.monotonic()
        if token:
            headers["Authorization"] = f"{self._info.scheme or 'Bearer'} {token}"
        return headers

    async def close(self) -> None:
        await self._session.close()

    async def _call(
        self,
        method: str,
        resource: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> Any:
        try:
            async with self._session.request(
                method,
                self._server + resource,
                params=query or [],
                data=None if body is None else json.dumps(body),
                headers=self._headers(content_type if body is not None else None),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise KubeError(response.status, _message(text, response.reason))
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise KubeError(0, f"{method} {resource}: {err!r}") from None

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``manifest`` as the operator's field manager, forcing conflicts."""
        meta = manifest["metadata"]
        resource = path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        metrics.API_WRITES.labels(verb="apply", kind=manifest["kind"]).inc()
        result = await self._call(
            "PATCH",
            resource,
            body=manifest,
            query=[("fieldManager", MANAGER), ("force", "true")],
            content_type=APPLY_CONTENT_TYPE,
        )
        return dict(result or {})

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            result = await self._call("GET", path(api_version, kind, namespace, name))
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return dict(result or {})

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete a child; already gone counts as done."""
        metrics.API_WRITES.labels(verb="delete", kind=kind).inc()
        try:
            await self._call(
                "DELETE",
                path(api_version, kind, namespace, name),
                body={"propagationPolicy": "Background"},
                content_type="application/json",
            )
        except KubeError as err:
            if err.status != 404:
                raise

    async def patch_twin_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (the operator is its only writer)."""
        metrics.API_WRITES.labels(verb="patch", kind="PhoenixTwin/status").inc()
        await self._call(
            "PATCH",
            path(API_VERSION, "PhoenixTwin", namespace, name) + "/status",
            body={"status": status},
            content_type=MERGE_CONTENT_TYPE,
        )

    async def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        """Objects of one kind in a namespace matching a label selector (kind/apiVersion set)."""
        result = await self._call(
            "GET",
            path(api_version, kind, namespace),
            query=[("labelSelector", label_selector)],
        )
        items = (result or {}).get("items") or []
        return [{**item, "apiVersion": api_version, "kind": kind} for item in items]
