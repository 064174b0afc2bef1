"""The Qdrant server backend, through qdrant-client's AsyncQdrantClient over gRPC.

``QDRANT_URL`` names Qdrant's gRPC endpoint (port 6334), as in the original.
With ``QDRANT_PATH`` the same code runs on qdrant-client's local mode instead:
that is how the tests exercise this backend without a Qdrant server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from qdrant_client import AsyncQdrantClient, models

from phoenix_memory import model
from phoenix_memory.model import Memory, MemoryFilter, ScoredMemory
from phoenix_memory.store.base import Vector, backend_errors

ENGINE = "Qdrant"

_INDEXED_FIELDS = {
    model.TWIN_ID: models.PayloadSchemaType.KEYWORD,
    model.MEMORY_TYPE: models.PayloadSchemaType.KEYWORD,
    model.CREATED_AT_MS: models.PayloadSchemaType.INTEGER,
}


def to_filter(where: MemoryFilter) -> models.Filter | None:
    """The Qdrant filter for ``where``; None when it selects everything."""
    must: list[models.Condition] = []
    if where.twin_id:
        must.append(
            models.FieldCondition(key=model.TWIN_ID, match=models.MatchValue(value=where.twin_id))
        )
    if where.memory_types:
        must.append(
            models.FieldCondition(
                key=model.MEMORY_TYPE, match=models.MatchAny(any=list(where.memory_types))
            )
        )
    return models.Filter(must=must) if must else None


class QdrantServerStore:
    """MemoryStore on a Qdrant server (or qdrant-client local mode)."""

    def __init__(self, client: AsyncQdrantClient, *, description: str, local: bool) -> None:
        self._client = client
        self._description = description
        # Local mode ignores payload indexes and warns about them.
        self._payload_indexes = not local

    @classmethod
    def connect(cls, url: str, *, api_key: str | None, timeout_s: float) -> QdrantServerStore:
        """A client for the gRPC endpoint ``url``; it connects lazily, on the first call."""
        parts = urlsplit(url)
        client = AsyncQdrantClient(
            host=parts.hostname or "127.0.0.1",
            grpc_port=parts.port or 6334,
            prefer_grpc=True,
            https=parts.scheme == "https",
            api_key=api_key,
            timeout=max(1, round(timeout_s)),
            # The version check is a blocking REST call to port 6333 at construction.
            check_compatibility=False,
        )
        return cls(client, description=f"Qdrant at {parts.hostname}:{parts.port}", local=False)

    @classmethod
    def local(cls, path: Path) -> QdrantServerStore:
        """qdrant-client local mode on ``path`` (one process at a time may open it)."""
        path.mkdir(parents=True, exist_ok=True)
        client = AsyncQdrantClient(path=str(path))
        return cls(client, description=f"Qdrant local mode at {path}", local=True)

    @property
    def description(self) -> str:
        return self._description

    async def ping(self) -> None:
        with backend_errors(ENGINE, "health check"):
            await self._client.get_collections()

    async def collection_exists(self, collection: str) -> bool:
        with backend_errors(ENGINE, "collection lookup"):
            return await self._client.collection_exists(collection)

    async def create_collection(self, collection: str, dim: int) -> None:
        with backend_errors(ENGINE, "create collection"):
            if not await self._client.collection_exists(collection):
                await self._client.create_collection(
                    collection,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                )
            if self._payload_indexes:  # idempotent: also repairs collections made elsewhere
                for field, schema in _INDEXED_FIELDS.items():
                    await self._client.create_payload_index(
                        collection, field, field_schema=schema, wait=True
                    )

    async def upsert(self, collection: str, points: Sequence[tuple[Memory, Vector]]) -> None:
        with backend_errors(ENGINE, "upsert"):
            await self._client.upsert(
                collection,
                points=[
                    models.PointStruct(id=m.id, vector=list(v), payload=m.to_payload())
                    for m, v in points
                ],
                wait=True,
            )

    async def search(
        self, collection: str, vector: Vector, where: MemoryFilter, limit: int
    ) -> list[ScoredMemory]:
        with backend_errors(ENGINE, "search"):
            response = await self._client.query_points(
                collection,
                query=list(vector),
                query_filter=to_filter(where),
                limit=limit,
                with_payload=True,
            )
        return [
            ScoredMemory(Memory.from_payload(point.id, point.payload), point.score)
            for point in response.points
        ]

    async def count(self, collection: str, where: MemoryFilter) -> int:
        with backend_errors(ENGINE, "count"):
            result = await self._client.count(collection, count_filter=to_filter(where), exact=True)
        return result.count

    async def newest(
        self, collection: str, where: MemoryFilter, offset: int, limit: int
    ) -> list[Memory]:
        with backend_errors(ENGINE, "list"):
            response = await self._client.query_points(
                collection,
                query=models.OrderByQuery(
                    order_by=models.OrderBy(
                        key=model.CREATED_AT_MS, direction=models.Direction.DESC
                    )
                ),
                query_filter=to_filter(where),
                offset=offset,
                limit=limit,
                with_payload=True,
            )
        return [Memory.from_payload(point.id, point.payload) for point in response.points]

    async def delete(self, collection: str, memory_id: str) -> bool:
        with backend_errors(ENGINE, "delete"):
            found = await self._client.retrieve(
                collection, [memory_id], with_payload=False, with_vectors=False
            )
            if not found:
                return False
            await self._client.delete(
                collection, points_selector=models.PointIdsList(points=[memory_id]), wait=True
            )
        return True

    async def close(self) -> None:
        with backend_errors(ENGINE, "close"):
            await self._client.close()
