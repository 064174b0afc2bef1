"""The embedded backend: Qdrant Edge (the Qdrant engine in-process), one shard per collection.

Each collection is a shard directory ``<MEMORY_DATA_DIR>/<collection>``. Shards
keep a write-ahead log, so an update is durable when ``update`` returns, even
if the process is killed afterwards. Edge calls block, so they run on worker
threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import qdrant_edge as qe

from phoenix_common.errors import DependencyUnavailable
from phoenix_memory import model
from phoenix_memory.model import Memory, MemoryFilter, ScoredMemory
from phoenix_memory.store.base import Vector, backend_errors

ENGINE = "Qdrant Edge"
CONFIG_FILE = "edge_config.json"  # written by EdgeShard.create: the shard is complete
_T = TypeVar("_T")


def to_filter(where: MemoryFilter) -> qe.Filter | None:
    """The Edge filter for ``where``; None when it selects everything."""
    must: list[qe.FieldCondition] = []
    if where.twin_id:
        must.append(qe.FieldCondition(model.TWIN_ID, match=qe.MatchValue(where.twin_id)))
    if where.memory_types:
        must.append(
            qe.FieldCondition(model.MEMORY_TYPE, match=qe.MatchAny(list(where.memory_types)))
        )
    return qe.Filter(must=list(must)) if must else None


def _index_operations() -> list[qe.UpdateOperation]:
    return [
        qe.UpdateOperation.create_field_index(model.TWIN_ID, qe.PayloadSchemaType.Keyword),
        qe.UpdateOperation.create_field_index(model.MEMORY_TYPE, qe.PayloadSchemaType.Keyword),
        qe.UpdateOperation.create_field_index(
            model.CREATED_AT_MS, qe.IntegerIndexParams(lookup=True, range=True)
        ),
    ]


class EdgeStore:
    """MemoryStore on Qdrant Edge shards under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._shards: dict[str, qe.EdgeShard] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def description(self) -> str:
        return f"Qdrant Edge at {self._data_dir}"

    def _path(self, collection: str) -> Path:
        return self._data_dir / collection

    async def _run(self, operation: str, call: Callable[[], _T]) -> _T:
        if self._closed:
            raise DependencyUnavailable(f"{ENGINE} is closed ({operation} refused)")
        with backend_errors(ENGINE, operation):
            return await asyncio.to_thread(call)

    async def _shard(self, collection: str) -> qe.EdgeShard | None:
        """The open shard of ``collection``, loading it from disk once; None if absent."""
        shard = self._shards.get(collection)
        if shard is not None:
            return shard
        async with self._lock:
            shard = self._shards.get(collection)
            if shard is None and (self._path(collection) / CONFIG_FILE).exists():
                path = str(self._path(collection))
                shard = await self._run("load", lambda: qe.EdgeShard.load(path))
                self._shards[collection] = shard
            return shard

    async def ping(self) -> None:
        def check() -> None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            if not self._data_dir.is_dir():
                raise OSError(f"{self._data_dir} is not a directory")

        await self._run("health check", check)

    async def collection_exists(self, collection: str) -> bool:
        return await self._shard(collection) is not None

    async def create_collection(self, collection: str, dim: int) -> None:
        if await self._shard(collection) is not None:
            return
        path = self._path(collection)

        def create() -> qe.EdgeShard:
            # A directory without a config may be a create that died half-way: Edge
            # creates into it if it holds no segments, and refuses (data kept) otherwise.
            vectors = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
            shard = qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=vectors))
            for operation in _index_operations():
                shard.update(operation)
            return shard

        async with self._lock:
            if collection not in self._shards:
                self._shards[collection] = await self._run("create collection", create)

    async def upsert(self, collection: str, points: Sequence[tuple[Memory, Vector]]) -> None:
        shard = await self._require(collection)
        operation = qe.UpdateOperation.upsert_points(
            [qe.Point(memory.id, list(vector), memory.to_payload()) for memory, vector in points]
        )
        await self._run("upsert", lambda: shard.update(operation))

    async def search(
        self, collection: str, vector: Vector, where: MemoryFilter, limit: int
    ) -> list[ScoredMemory]:
        shard = await self._require(collection)
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(list(vector)),
            filter=to_filter(where),
            with_payload=True,
        )
        points = await self._run("search", lambda: shard.query(request))
        return [ScoredMemory(Memory.from_payload(p.id, p.payload), p.score) for p in points]

    async def count(self, collection: str, where: MemoryFilter) -> int:
        shard = await self._require(collection)
        request = qe.CountRequest(exact=True, filter=to_filter(where))
        return await self._run("count", lambda: shard.count(request))

    async def newest(
        self, collection: str, where: MemoryFilter, offset: int, limit: int
    ) -> list[Memory]:
        shard = await self._require(collection)
        request = qe.QueryRequest(
            limit=limit,
            offset=offset,
            query=qe.OrderBy(model.CREATED_AT_MS, qe.Direction.Desc),
            filter=to_filter(where),
            with_payload=True,
        )
        points = await self._run("list", lambda: shard.query(request))
        return [Memory.from_payload(p.id, p.payload) for p in points]

    async def delete(self, collection: str, memory_id: str) -> bool:
        shard = await self._require(collection)

        def delete() -> bool:
            if not shard.retrieve([memory_id], False, False):
                return False
            shard.update(qe.UpdateOperation.delete_points([memory_id]))
            return True

        return await self._run("delete", delete)

    async def _require(self, collection: str) -> qe.EdgeShard:
        shard = await self._shard(collection)
        if shard is None:
            raise DependencyUnavailable(f"{ENGINE} collection {collection} is missing")
        return shard

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        shards, self._shards = list(self._shards.values()), {}
        with backend_errors(ENGINE, "close"):
            for shard in shards:
                await asyncio.to_thread(shard.flush)
                await asyncio.to_thread(shard.close)
