"""A twin's Qdrant collections: ensured while it lives, deleted on Delete reclaim.

Collection names come from phoenix_common.naming, the function the memory
service uses too. The operator creates each collection with the twin's vector
size and cosine distance (what the memory service expects) and the payload
indexes the memory service filters on.

Test-only: with ``PHOENIX_QDRANT_LOCAL_PATH`` the operator's *default* Qdrant
(twins without spec.memory.qdrant.url) is qdrant-client local mode under
``<path>/<twin namespace>``, opened per operation (local mode allows one
client per directory at a time, so tests may open it between operations).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from qdrant_client import AsyncQdrantClient, models

from phoenix_common.errors import DependencyUnavailable
from phoenix_common.naming import collection_name
from phoenix_operator.api import Twin

logger = logging.getLogger(__name__)

# Mirrors the memory service's filters: twin_id and memory_type (keyword), created_at_ms.
PAYLOAD_INDEXES = {
    "twin_id": models.PayloadSchemaType.KEYWORD,
    "memory_type": models.PayloadSchemaType.KEYWORD,
    "created_at_ms": models.PayloadSchemaType.INTEGER,
}


def collections(twin: Twin) -> list[str]:
    """The collections a twin owns, in spec order."""
    return [collection_name(twin.ref, ns) for ns in twin.spec.memory.namespaces]


class QdrantConnector:
    """Opens a client for a twin's Qdrant: the network endpoint, or local mode in tests."""

    def __init__(
        self,
        *,
        default_url: str,
        local_path: Path | None,
        timeout: float,
        default_api_key: str | None = None,
    ) -> None:
        self._default_url = default_url
        # Only for the operator's own calls to the default Qdrant: a twin's memory
        # pods need a Secret of their own namespace (spec.memory.qdrant.apiKeySecretRef).
        self._default_api_key = default_api_key
        self._local_path = local_path
        self._timeout = timeout
        self._local_locks: dict[Path, asyncio.Lock] = {}

    def describe(self, twin: Twin) -> str:
        if twin.spec.memory.qdrant.url is None and self._local_path is not None:
            return f"local mode at {self._local_path / twin.namespace}"
        return twin.spec.memory.qdrant.url or self._default_url

    @contextlib.asynccontextmanager
    async def open(self, twin: Twin, api_key: str | None) -> AsyncIterator[AsyncQdrantClient]:
        if twin.spec.memory.qdrant.url is None and self._local_path is not None:
            path = self._local_path / twin.namespace
            lock = self._local_locks.setdefault(path, asyncio.Lock())
            async with lock:
                path.mkdir(parents=True, exist_ok=True)
                client = AsyncQdrantClient(path=str(path))
                try:
                    yield client
                finally:
                    await client.close()
            return
        if twin.spec.memory.qdrant.url is None and api_key is None:
            api_key = self._default_api_key
        parts = urlsplit(twin.spec.memory.qdrant.url or self._default_url)
        client = AsyncQdrantClient(
            host=parts.hostname or "127.0.0.1",
            grpc_port=parts.port or 6334,
            prefer_grpc=True,
            https=parts.scheme == "https",
            api_key=api_key,
            timeout=max(1, round(self._timeout)),
            check_compatibility=False,  # a version probe per operation would double the calls
        )
        try:
            yield client
        finally:
            await client.close()

    async def ensure(self, twin: Twin, api_key: str | None) -> list[str]:
        """Create the twin's missing collections; raise DependencyUnavailable saying why not."""
        names = collections(twin)
        local = twin.spec.memory.qdrant.url is None and self._local_path is not None
        try:
            async with asyncio.timeout(self._timeout * (1 + len(names))):
                async with self.open(twin, api_key) as client:
                    for name in names:
                        if await client.collection_exists(name):
                            continue
                        await client.create_collection(
                            name,
                            vectors_config=models.VectorParams(
                                size=twin.spec.memory.embedding.dimension,
                                distance=models.Distance.COSINE,
                            ),
                        )
                        if not local:  # local mode ignores payload indexes (and warns)
                            for field, schema in PAYLOAD_INDEXES.items():
                                await client.create_payload_index(
                                    name, field, field_schema=schema, wait=True
                                )
                        logger.info("collection created", extra={"collection": name})
        except Exception as err:  # qdrant-client raises grpc, httpx and its own errors
            raise DependencyUnavailable(
                f"Qdrant at {self.describe(twin)} is unreachable or failed: "
                f"{type(err).__name__}: {str(err)[:200]}"
            ) from err
        return names

    async def delete(self, twin: Twin, api_key: str | None) -> list[str]:
        """Delete the twin's collections (missing ones count as deleted)."""
        names = collections(twin)
        try:
            async with asyncio.timeout(self._timeout * (1 + len(names))):
                async with self.open(twin, api_key) as client:
                    for name in names:
                        if await client.collection_exists(name):
                            await client.delete_collection(name)
                            logger.info("collection deleted", extra={"collection": name})
        except Exception as err:  # qdrant-client raises grpc, httpx and its own errors
            raise DependencyUnavailable(
                f"Qdrant at {self.describe(twin)} is unreachable or failed: "
                f"{type(err).__name__}: {str(err)[:200]}"
            ) from err
        return names
