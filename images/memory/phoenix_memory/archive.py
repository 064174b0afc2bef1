"""The Neural Archive: commit, query, list and delete memories of one twin.

It joins the embedder and the store. Collections are named by
``phoenix_common.naming.collection_name`` (``phx.<k8s ns>.<twin>.<memory ns>``),
created on the first commit, and remembered once known to exist, so the hot
path never lists collections. Reads on a namespace that has no collection yet
see an empty archive instead of creating one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from phoenix_common.errors import NotFound
from phoenix_common.naming import TwinRef, collection_name
from phoenix_memory.embed.base import Embedder
from phoenix_memory.metrics import OPERATION_SECONDS
from phoenix_memory.model import (
    ListRequest,
    Memory,
    MemoryPage,
    MemoryQuery,
    NewMemory,
    QueryResult,
)
from phoenix_memory.store.base import MemoryStore

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Archive:
    def __init__(
        self,
        twin: TwinRef,
        store: MemoryStore,
        embedder: Embedder,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.twin = twin
        self.store = store
        self.embedder = embedder
        self._clock = clock
        self._known: set[str] = set()
        self._create_lock = asyncio.Lock()

    def collection(self, namespace: str) -> str:
        return collection_name(self.twin, namespace)

    async def _exists(self, collection: str) -> bool:
        if collection in self._known:
            return True
        if await self.store.collection_exists(collection):
            # Created elsewhere (another replica, the operator): make sure of its indexes once.
            await self._ensure(collection)
            return True
        return False

    async def _ensure(self, collection: str) -> None:
        if collection in self._known:
            return
        async with self._create_lock:
            if collection not in self._known:
                await self.store.create_collection(collection, self.embedder.dim)
                self._known.add(collection)
                logger.info("collection ready", extra={"collection": collection})

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
        """Store one memory durably and return it (with its new id)."""
        return (await self.commit_many([item]))[0]

    async def commit_many(self, items: Sequence[NewMemory]) -> list[Memory]:
        """Embed ``items`` as one batch and store them durably, grouped by namespace."""
        with OPERATION_SECONDS.labels("commit").time():
            return await self._commit_many(items)

    async def _commit_many(self, items: Sequence[NewMemory]) -> list[Memory]:
        memories = [self._new(item) for item in items]
        vectors = await self.embedder.embed([item.content for item in items])
        by_collection: dict[str, list[tuple[Memory, list[float]]]] = {}
        for item, memory, vector in zip(items, memories, vectors, strict=True):
            by_collection.setdefault(self.collection(item.namespace), []).append((memory, vector))
        for collection, points in by_collection.items():
            await self._ensure(collection)
            await self.store.upsert(collection, points)
        return memories

    async def query(self, query: MemoryQuery) -> QueryResult:
        with OPERATION_SECONDS.labels("query").time():
            return await self._query(query)

    async def _query(self, query: MemoryQuery) -> QueryResult:
        collection = self.collection(query.namespace)
        if not await self._exists(collection):
            return QueryResult(hits=[], total_count=0)
        (vector,) = await self.embedder.embed([query.text])
        hits, total = await asyncio.gather(
            self.store.search(collection, vector, query.filter, query.top_k),
            self.store.count(collection, query.filter),
        )
        return QueryResult(hits=hits, total_count=total)

    async def list(self, request: ListRequest) -> MemoryPage:
        with OPERATION_SECONDS.labels("list").time():
            return await self._list(request)

    async def _list(self, request: ListRequest) -> MemoryPage:
        collection = self.collection(request.namespace)
        memories: list[Memory] = []
        total = 0
        if await self._exists(collection):
            memories, total = await asyncio.gather(
                self.store.newest(collection, request.filter, request.offset, request.page_size),
                self.store.count(collection, request.filter),
            )
        return MemoryPage(
            memories=memories, total_count=total, page=request.page, page_size=request.page_size
        )

    async def delete(self, namespace: str, memory_id: str) -> None:
        """Delete one memory; NotFound if the namespace holds no memory with that id."""
        collection = self.collection(namespace)
        with OPERATION_SECONDS.labels("delete").time():
            deleted = await self._exists(collection) and await self.store.delete(
                collection, memory_id
            )
        if not deleted:
            raise NotFound(f"memory {memory_id} does not exist in namespace {namespace!r}")

    async def close(self) -> None:
        await self.embedder.close()
        await self.store.close()
