"""The Neural Archive: commit, query, list and delete memories of one twin.

It joins the embedder and the store, and owns the Qdrant schema (the operator
only deletes on reclaim). Each memory namespace is a ``Scope``: with
``collection`` tenancy its own collection ``phx.<k8s ns>.<twin>.<memory ns>``;
with ``payload`` tenancy the endpoint's shared collection ``phx_shared_<dim>``
plus the tenant key, which the store puts in every filter and on every point.
A collection is created on the first commit and remembered once known to
exist, so the hot path never lists collections; reads on a namespace with no
collection see an empty archive instead of creating one.

Per-namespace policies (``NamespacePolicy``): near-duplicate commits refresh
the existing memory instead of adding a point, and ``enforce_retention``
(called on a schedule by the server) deletes the oldest memories beyond the
namespace's age and count limits, touching no other namespace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from phoenix_common.errors import NotFound
from phoenix_common.naming import (
    Tenancy,
    TwinRef,
    collection_name,
    shared_collection_name,
    tenant_key,
)
from phoenix_memory.embed.base import Embedder
from phoenix_memory.metrics import DEDUPLICATED, OPERATION_SECONDS, RETENTION_DELETED
from phoenix_memory.model import (
    ListRequest,
    Memory,
    MemoryFilter,
    MemoryPage,
    MemoryQuery,
    NamespacePolicy,
    NewMemory,
    QueryResult,
    Scope,
)
from phoenix_memory.store.base import MemoryStore

logger = logging.getLogger(__name__)
RETENTION_BATCH = 1000
NO_POLICY = NamespacePolicy()


def _now() -> datetime:
    return datetime.now(UTC)


class Archive:
    def __init__(
        self,
        twin: TwinRef,
        store: MemoryStore,
        embedder: Embedder,
        *,
        tenancy: Tenancy = "collection",
        policies: Mapping[str, NamespacePolicy] | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.twin = twin
        self.store = store
        self.embedder = embedder
        self.tenancy = tenancy
        self.policies = dict(policies or {})
        self._clock = clock
        self._known: set[str] = set()
        self._create_lock = asyncio.Lock()
        self._dedup_locks: dict[Scope, asyncio.Lock] = {}

    def scope(self, namespace: str) -> Scope:
        """Where ``namespace``'s memories live (validates the namespace)."""
        if self.tenancy == "payload":
            return Scope(
                shared_collection_name(self.embedder.dim),
                tenant=tenant_key(self.twin, namespace),
                twin=self.twin.key,
            )
        return Scope(collection_name(self.twin, namespace))

    def collection(self, namespace: str) -> str:
        return self.scope(namespace).collection

    async def _exists(self, scope: Scope) -> bool:
        if scope.collection in self._known:
            return True
        if await self.store.exists(scope):
            # Created elsewhere (another replica, an older version): make sure of its indexes.
            await self._ensure(scope)
            return True
        return False

    async def _ensure(self, scope: Scope) -> None:
        if scope.collection in self._known:
            return
        async with self._create_lock:
            if scope.collection not in self._known:
                await self.store.ensure(scope, self.embedder.dim)
                self._known.add(scope.collection)
                logger.info("collection ready", extra={"collection": scope.collection})

    def _new(self, item: NewMemory) -> Memory:
        return Memory(
            id=str(uuid.uuid4()),
            created_at=self._clock(),
            content=item.content,
            twin_id=item.twin_id,
            memory_type=item.memory_type,
            risk_level=item.risk_level,
            metadata=dict(item.metadata),
        )

    async def commit(self, item: NewMemory) -> Memory:
        """Store one memory durably and return it (its new id, or the duplicate's it kept)."""
        return (await self.commit_many([item]))[0]

    async def commit_many(self, items: Sequence[NewMemory]) -> list[Memory]:
        """Embed ``items`` as one batch and store them durably, grouped by namespace."""
        with OPERATION_SECONDS.labels("commit").time():
            return await self._commit_many(items)

    async def _commit_many(self, items: Sequence[NewMemory]) -> list[Memory]:
        memories = [self._new(item) for item in items]
        vectors = await self.embedder.embed([item.content for item in items])
        plain: dict[Scope, list[tuple[Memory, list[float]]]] = {}
        for index, (item, vector) in enumerate(zip(items, vectors, strict=True)):
            scope = self.scope(item.namespace)
            threshold = self.policies.get(item.namespace, NO_POLICY).dedup_threshold
            if threshold is None:
                plain.setdefault(scope, []).append((memories[index], vector))
            else:
                memories[index] = await self._commit_or_refresh(
                    scope, item.namespace, memories[index], vector, threshold
                )
        for scope, points in plain.items():
            await self._ensure(scope)
            await self.store.upsert(scope, points)
        return memories

    async def _commit_or_refresh(
        self, scope: Scope, namespace: str, memory: Memory, vector: list[float], threshold: float
    ) -> Memory:
        """Refresh the closest memory of the same twin_id and type if it is a near-duplicate;
        store ``memory`` otherwise. One at a time per namespace, so two concurrent
        duplicates cannot both be added."""
        await self._ensure(scope)
        same = MemoryFilter(twin_id=memory.twin_id, memory_types=(memory.memory_type,))
        async with self._dedup_locks.setdefault(scope, asyncio.Lock()):
            for hit in await self.store.search(scope, vector, same, 1):
                # An empty twin_id filter matches every twin: compare it exactly here.
                if (
                    hit.score >= threshold
                    and hit.memory.twin_id == memory.twin_id
                    and await self.store.refresh(scope, hit.memory.id, memory.created_at)
                ):
                    DEDUPLICATED.labels(namespace).inc()
                    return dataclasses.replace(hit.memory, created_at=memory.created_at)
            await self.store.upsert(scope, [(memory, vector)])
        return memory

    async def query(self, query: MemoryQuery) -> QueryResult:
        with OPERATION_SECONDS.labels("query").time():
            return await self._query(query)

    async def _query(self, query: MemoryQuery) -> QueryResult:
        scope = self.scope(query.namespace)
        if not await self._exists(scope):
            return QueryResult(hits=[], total_count=0)
        # The exact count needs no vector: it runs while the model embeds, so only the
        # search follows the embedding (a count beside the search cost ~5 ms more).
        counting = asyncio.create_task(self.store.count(scope, query.filter))
        try:
            (vector,) = await self.embedder.embed([query.text])
            hits = await self.store.search(scope, vector, query.filter, query.top_k)
        except BaseException:
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)  # never left running
            raise
        return QueryResult(hits=hits, total_count=await counting)

    async def search(self, query: MemoryQuery, vector: Sequence[float]) -> QueryResult:
        """QueryMemory after the embedding: the hits and the exact count of matches."""
        scope = self.scope(query.namespace)
        if not await self._exists(scope):
            return QueryResult(hits=[], total_count=0)
        hits, total = await asyncio.gather(
            self.store.search(scope, vector, query.filter, query.top_k),
            self.store.count(scope, query.filter),
        )
        return QueryResult(hits=hits, total_count=total)

    async def list(self, request: ListRequest) -> MemoryPage:
        with OPERATION_SECONDS.labels("list").time():
            return await self._list(request)

    async def _list(self, request: ListRequest) -> MemoryPage:
        scope = self.scope(request.namespace)
        memories: list[Memory] = []
        total = 0
        if await self._exists(scope):
            memories, total = await asyncio.gather(
                self.store.newest(scope, request.filter, request.offset, request.page_size),
                self.store.count(scope, request.filter),
            )
        return MemoryPage(
            memories=memories, total_count=total, page=request.page, page_size=request.page_size
        )

    async def delete(self, namespace: str, memory_id: str) -> None:
        """Delete one memory; NotFound if the namespace holds no memory with that id."""
        scope = self.scope(namespace)
        with OPERATION_SECONDS.labels("delete").time():
            deleted = await self._exists(scope) and await self.store.delete(scope, [memory_id])
        if not deleted:
            raise NotFound(f"memory {memory_id} does not exist in namespace {namespace!r}")

    async def enforce_retention(self) -> dict[str, int]:
        """Apply every namespace's age and count limits, oldest first; deletions per namespace."""
        deleted: dict[str, int] = {}
        for namespace, policy in self.policies.items():
            if not policy.retains:
                continue
            scope = self.scope(namespace)
            if not await self._exists(scope):
                continue
            removed = 0
            if policy.max_age is not None:
                expired = await self.store.delete_before(scope, self._clock() - policy.max_age)
                RETENTION_DELETED.labels(namespace, "max_age").inc(expired)
                removed += expired
            if policy.max_count is not None:
                while surplus := await self.store.newest(
                    scope, MemoryFilter(), policy.max_count, RETENTION_BATCH
                ):
                    trimmed = await self.store.delete(scope, [m.id for m in surplus])
                    RETENTION_DELETED.labels(namespace, "max_count").inc(trimmed)
                    removed += trimmed
                    if trimmed == 0:
                        break
            if removed:
                logger.info(
                    "retention deleted memories",
                    extra={"namespace": namespace, "deleted": removed},
                )
            deleted[namespace] = removed
        return deleted

    async def close(self) -> None:
        await self.embedder.close()
        await self.store.close()
