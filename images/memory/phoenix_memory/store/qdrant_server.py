"""The Qdrant server backend, through qdrant-client's AsyncQdrantClient over gRPC.

The client comes from ``phoenix_common.qdrant.connect``, the builder the
operator uses too. QueryMemory's two calls (search and exact count) speak the
client's own gRPC stub directly, on the same channel (API key included): through
the client they cost 2.7-3.6 and 1.2-1.6 ms of CPU per call on the loaded bench
machine, mostly its pydantic conversions of the request and of every scored
point (py-spy). Everything else uses the client.

Tests run this backend against the real Qdrant server binary
(tests/memory/qdrant_server.py), not qdrant-client's local mode, which ignores
payload indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qdrant_client import AsyncQdrantClient, grpc, models
from qdrant_client.conversions.conversion import RestToGrpc, grpc_to_payload

from phoenix_common import qdrant
from phoenix_common.naming import TENANT_FIELD, TWIN_FIELD
from phoenix_memory import model
from phoenix_memory.model import Memory, MemoryFilter, Scope, ScoredMemory
from phoenix_memory.store.base import Vector, backend_errors

ENGINE = "Qdrant"

_INDEXES: dict[str, Any] = {
    model.TWIN_ID: models.PayloadSchemaType.KEYWORD,
    model.MEMORY_TYPE: models.PayloadSchemaType.KEYWORD,
    model.CREATED_AT_MS: models.PayloadSchemaType.INTEGER,
}
_SHARED_INDEXES: dict[str, Any] = {
    # Qdrant co-locates each tenant's points and plans filters around this key (v1.11+).
    TENANT_FIELD: models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
    TWIN_FIELD: models.PayloadSchemaType.KEYWORD,
}


def to_filter(scope: Scope, where: MemoryFilter, *extra: models.Condition) -> models.Filter | None:
    """The Qdrant filter for ``where`` in ``scope`` (the tenant first, never optional)."""
    must: list[models.Condition] = []
    if scope.tenant is not None:
        must.append(
            models.FieldCondition(key=TENANT_FIELD, match=models.MatchValue(value=scope.tenant))
        )
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
    must.extend(extra)
    return models.Filter(must=must) if must else None


def to_grpc_filter(scope: Scope, where: MemoryFilter) -> grpc.Filter | None:
    """``to_filter`` in the wire form (the same conditions, converted by qdrant-client)."""
    selector = to_filter(scope, where)
    return None if selector is None else RestToGrpc.convert_filter(selector)


def _point_id(point_id: grpc.PointId) -> str | int:
    return point_id.uuid if point_id.WhichOneof("point_id_options") == "uuid" else point_id.num


def payload(scope: Scope, memory: Memory) -> dict[str, Any]:
    data = memory.to_payload()
    if scope.tenant is not None:
        data[TENANT_FIELD] = scope.tenant
        data[TWIN_FIELD] = scope.twin
    return data


class QdrantServerStore:
    """MemoryStore on a Qdrant server."""

    def __init__(
        self, client: AsyncQdrantClient, *, description: str, timeout_s: float = 5.0
    ) -> None:
        self.client = client
        self._description = description
        self._timeout_s = timeout_s

    @classmethod
    def connect(cls, url: str, *, api_key: str | None, timeout_s: float) -> QdrantServerStore:
        """A store on the gRPC endpoint ``url``; it connects lazily, on the first call."""
        client = qdrant.connect(url, api_key=api_key, timeout_s=timeout_s)
        return cls(client, description=f"Qdrant at {qdrant.describe(url)}", timeout_s=timeout_s)

    @property
    def description(self) -> str:
        return self._description

    async def ping(self) -> None:
        with backend_errors(ENGINE, "health check"):
            await self.client.get_collections()

    async def exists(self, scope: Scope) -> bool:
        with backend_errors(ENGINE, "collection lookup"):
            return await self.client.collection_exists(scope.collection)

    async def ensure(self, scope: Scope, dim: int) -> None:
        with backend_errors(ENGINE, "create collection"):
            if not await self.client.collection_exists(scope.collection):
                await self.client.create_collection(
                    scope.collection,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                )
            indexes = {**_INDEXES, **(_SHARED_INDEXES if scope.shared else {})}
            # Idempotent: also repairs collections created elsewhere or by older versions.
            for field, schema in indexes.items():
                await self.client.create_payload_index(
                    scope.collection, field, field_schema=schema, wait=True
                )

    async def upsert(self, scope: Scope, points: Sequence[tuple[Memory, Vector]]) -> None:
        with backend_errors(ENGINE, "upsert"):
            await self.client.upsert(
                scope.collection,
                points=[
                    models.PointStruct(id=m.id, vector=list(v), payload=payload(scope, m))
                    for m, v in points
                ],
                wait=True,
            )

    async def search(
        self, scope: Scope, vector: Vector, where: MemoryFilter, limit: int
    ) -> list[ScoredMemory]:
        request = grpc.QueryPoints(
            collection_name=scope.collection,
            query=grpc.Query(nearest=grpc.VectorInput(dense=grpc.DenseVector(data=vector))),
            filter=to_grpc_filter(scope, where),
            limit=limit,
            with_payload=grpc.WithPayloadSelector(enable=True),
        )
        with backend_errors(ENGINE, "search"):
            response = await self.client.grpc_points.Query(request, timeout=self._timeout_s)
        return [
            ScoredMemory(
                Memory.from_payload(_point_id(point.id), grpc_to_payload(point.payload)),
                point.score,
            )
            for point in response.result
        ]

    async def count(self, scope: Scope, where: MemoryFilter) -> int:
        request = grpc.CountPoints(
            collection_name=scope.collection, filter=to_grpc_filter(scope, where), exact=True
        )
        with backend_errors(ENGINE, "count"):
            response = await self.client.grpc_points.Count(request, timeout=self._timeout_s)
        count: int = response.result.count
        return count

    async def newest(
        self, scope: Scope, where: MemoryFilter, offset: int, limit: int
    ) -> list[Memory]:
        with backend_errors(ENGINE, "list"):
            response = await self.client.query_points(
                scope.collection,
                query=models.OrderByQuery(
                    order_by=models.OrderBy(
                        key=model.CREATED_AT_MS, direction=models.Direction.DESC
                    )
                ),
                query_filter=to_filter(scope, where),
                offset=offset,
                limit=limit,
                with_payload=True,
            )
        return [Memory.from_payload(point.id, point.payload) for point in response.points]

    async def _delete_matching(self, scope: Scope, selector: models.Filter, op: str) -> int:
        with backend_errors(ENGINE, op):
            found = (
                await self.client.count(scope.collection, count_filter=selector, exact=True)
            ).count
            if found:
                await self.client.delete(
                    scope.collection,
                    points_selector=models.FilterSelector(filter=selector),
                    wait=True,
                )
        return found

    async def delete(self, scope: Scope, memory_ids: Sequence[str]) -> int:
        if not memory_ids:
            return 0
        selector = to_filter(scope, MemoryFilter(), models.HasIdCondition(has_id=list(memory_ids)))
        assert selector is not None  # noqa: S101 - type narrowing: a has-id condition always makes a filter
        return await self._delete_matching(scope, selector, "delete")

    async def delete_before(self, scope: Scope, cutoff: datetime) -> int:
        older = models.FieldCondition(
            key=model.CREATED_AT_MS, range=models.Range(lt=int(cutoff.timestamp() * 1000))
        )
        selector = to_filter(scope, MemoryFilter(), older)
        assert selector is not None  # noqa: S101 - type narrowing: a has-id condition always makes a filter
        return await self._delete_matching(scope, selector, "expire")

    async def refresh(self, scope: Scope, memory_id: str, created_at: datetime) -> bool:
        selector = to_filter(scope, MemoryFilter(), models.HasIdCondition(has_id=[memory_id]))
        assert selector is not None  # noqa: S101 - type narrowing: a has-id condition always makes a filter
        with backend_errors(ENGINE, "refresh"):
            found = (
                await self.client.count(scope.collection, count_filter=selector, exact=True)
            ).count
            if found:
                await self.client.set_payload(
                    scope.collection,
                    payload=Memory.timestamp_payload(created_at),
                    points=models.FilterSelector(filter=selector),
                    wait=True,
                )
        return bool(found)

    async def close(self) -> None:
        with backend_errors(ENGINE, "close"):
            await self.client.close()
