"""A twin's memories in Qdrant, as far as the operator is concerned: reachable, and reclaimed.

The memory service owns the Qdrant schema: it creates collections and payload
indexes on first use, from the code that reads them, so a schema change ships
with the code that needs it and there is one definition. The operator only

- checks that the twin's Qdrant endpoint answers (``grpc.health.v1.Health/Check``,
  a raw gRPC call: no qdrant-client, numpy or pydantic models in a steady-state
  operator), so the twin's status can say ``QdrantUnreachable``;
- deletes a twin's memories on reclaim (``reclaimPolicy: Delete``): its
  collections in ``collection`` tenancy, its points (``twin`` key) in the
  shared collection in ``payload`` tenancy. Only then is qdrant-client
  imported, through ``phoenix_common.qdrant.connect``, the builder the memory
  service uses too.

Tenancy is per Qdrant endpoint: a twin's ``spec.memory.qdrant.tenancy``, else
for the operator's default endpoint the operator's
``PHOENIX_OPERATOR_DEFAULT_QDRANT_TENANCY``, else ``collection``.

Test-only: with ``PHOENIX_QDRANT_LOCAL_PATH`` the operator's *default* Qdrant
(twins without spec.memory.qdrant.url) is qdrant-client local mode under
``<path>/<twin namespace>``, opened per operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc

from phoenix_common import qdrant
from phoenix_common.errors import DependencyUnavailable
from phoenix_common.naming import TWIN_FIELD, Tenancy, collection_name, shared_collection_name
from phoenix_operator.api import Twin

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

logger = logging.getLogger(__name__)
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}, protobuf-encoded


def tenancy(twin: Twin, default_tenancy: Tenancy) -> Tenancy:
    """The tenancy mode of the twin's Qdrant endpoint."""
    return twin.spec.memory.qdrant.resolved_tenancy(default_tenancy)


def collections(twin: Twin, default_tenancy: Tenancy = "collection") -> list[str]:
    """Where the twin's memories live, in spec order: its collections, or the shared one."""
    if tenancy(twin, default_tenancy) == "payload":
        return [shared_collection_name(twin.spec.memory.embedding.dimension)]
    return [collection_name(twin.ref, ns) for ns in twin.spec.memory.namespaces]


class QdrantConnector:
    """Talks to a twin's Qdrant: the network endpoint, or local mode in tests."""

    def __init__(
        self,
        *,
        default_url: str,
        local_path: Path | None,
        timeout: float,
        default_api_key: str | None = None,
        default_tenancy: Tenancy = "collection",
    ) -> None:
        self._default_url = default_url
        # Only for the operator's own calls to the default Qdrant: a twin's memory
        # pods need a Secret of their own namespace (spec.memory.qdrant.apiKeySecretRef).
        self._default_api_key = default_api_key
        self._local_path = local_path
        self._timeout = timeout
        self.default_tenancy = default_tenancy
        self._local_locks: dict[Path, asyncio.Lock] = {}

    def _local(self, twin: Twin) -> Path | None:
        if twin.spec.memory.qdrant.url is None and self._local_path is not None:
            return self._local_path / twin.namespace
        return None

    def describe(self, twin: Twin) -> str:
        local = self._local(twin)
        if local is not None:
            return f"local mode at {local}"
        return twin.spec.memory.qdrant.url or self._default_url

    def collections(self, twin: Twin) -> list[str]:
        return collections(twin, self.default_tenancy)

    def _api_key(self, twin: Twin, api_key: str | None) -> str | None:
        if twin.spec.memory.qdrant.url is None and api_key is None:
            return self._default_api_key
        return api_key

    def _fail(self, twin: Twin, err: BaseException) -> DependencyUnavailable:
        return DependencyUnavailable(
            f"Qdrant at {self.describe(twin)} is unreachable or failed: "
            f"{type(err).__name__}: {str(err)[:200]}"
        )

    async def check(self, twin: Twin, api_key: str | None) -> list[str]:
        """Raise DependencyUnavailable unless the twin's Qdrant serves; return where the twin's
        memories live (the memory service creates them on first use)."""
        if self._local(twin) is not None:
            return self.collections(twin)
        url = twin.spec.memory.qdrant.url or self._default_url
        parts = urlsplit(url)
        target = f"{parts.hostname}:{parts.port or qdrant.DEFAULT_GRPC_PORT}"
        key = self._api_key(twin, api_key)
        metadata = (("api-key", key),) if key else None
        channel = (
            grpc.aio.secure_channel(target, grpc.ssl_channel_credentials())
            if parts.scheme == "https"
            else grpc.aio.insecure_channel(target)
        )
        try:
            async with channel:
                call = channel.unary_unary(
                    HEALTH_CHECK, request_serializer=None, response_deserializer=None
                )
                reply = await call(b"", timeout=self._timeout, metadata=metadata)
        except grpc.RpcError as err:
            raise self._fail(twin, err) from err
        if reply != SERVING:
            raise DependencyUnavailable(f"Qdrant at {self.describe(twin)} is not serving")
        return self.collections(twin)

    @contextlib.asynccontextmanager
    async def open(self, twin: Twin, api_key: str | None) -> AsyncIterator[AsyncQdrantClient]:
        local = self._local(twin)
        if local is not None:
            from qdrant_client import AsyncQdrantClient  # noqa: PLC0415  (reclaim only)

            lock = self._local_locks.setdefault(local, asyncio.Lock())
            async with lock:
                local.mkdir(parents=True, exist_ok=True)
                client = AsyncQdrantClient(path=str(local))
                try:
                    yield client
                finally:
                    await client.close()
            return
        client = qdrant.connect(
            twin.spec.memory.qdrant.url or self._default_url,
            api_key=self._api_key(twin, api_key),
            timeout_s=self._timeout,
        )
        try:
            yield client
        finally:
            await client.close()

    async def delete(self, twin: Twin, api_key: str | None) -> list[str]:
        """Delete the twin's memories: its collections (missing ones count as deleted), or its
        points in the shared collection. Returns what was reclaimed, for the Event."""
        names = self.collections(twin)
        try:
            async with asyncio.timeout(self._timeout * (1 + len(names))):
                async with self.open(twin, api_key) as client:
                    if tenancy(twin, self.default_tenancy) == "payload":
                        return [await _delete_points(client, names[0], twin)]
                    for name in names:
                        if await client.collection_exists(name):
                            await client.delete_collection(name)
                            logger.info("collection deleted", extra={"collection": name})
        except Exception as err:  # qdrant-client raises grpc, httpx and its own errors
            raise self._fail(twin, err) from err
        return names


async def _delete_points(client: AsyncQdrantClient, shared: str, twin: Twin) -> str:
    from qdrant_client import models  # noqa: PLC0415  (reclaim only)

    if await client.collection_exists(shared):
        selector: Any = models.FilterSelector(
            filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key=TWIN_FIELD, match=models.MatchValue(value=twin.ref.key)
                    )
                ]
            )
        )
        await client.delete(shared, points_selector=selector, wait=True)
        logger.info("twin's points deleted", extra={"collection": shared, "twin": twin.ref.key})
    return f"{shared} (points of {twin.ref.key})"
