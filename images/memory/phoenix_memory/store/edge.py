"""The embedded backend: Qdrant Edge (the Qdrant engine in-process), one shard per collection.

Each collection is a shard directory ``<MEMORY_DATA_DIR>/<collection>``. Shards
keep a write-ahead log, so an update is durable when ``update`` returns, even
if the process is killed afterwards. Edge calls block, so they run on worker
threads, never on the event loop. Writes to a shard are serialised by its lock,
which is also what makes ``backup`` a consistent copy.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import qdrant_edge as qe

from phoenix_common.errors import DependencyUnavailable
from phoenix_common.naming import TENANT_FIELD, TWIN_FIELD
from phoenix_memory import model
from phoenix_memory.model import Memory, MemoryFilter, Scope, ScoredMemory
from phoenix_memory.store.base import Vector, backend_errors

ENGINE = "Qdrant Edge"
CONFIG_FILE = "edge_config.json"  # written by EdgeShard.create: the shard is complete
_T = TypeVar("_T")


def conditions(scope: Scope, where: MemoryFilter) -> list[qe.FieldCondition]:
    """The filter conditions of ``where`` inside ``scope``: the tenant first, never optional."""
    must: list[qe.FieldCondition] = []
    if scope.tenant is not None:
        must.append(qe.FieldCondition(TENANT_FIELD, match=qe.MatchValue(scope.tenant)))
    if where.twin_id:
        must.append(qe.FieldCondition(model.TWIN_ID, match=qe.MatchValue(where.twin_id)))
    if where.memory_types:
        must.append(
            qe.FieldCondition(model.MEMORY_TYPE, match=qe.MatchAny(list(where.memory_types)))
        )
    return must


def to_filter(scope: Scope, where: MemoryFilter, *extra: qe.ConditionType) -> qe.Filter | None:
    """The Edge filter for ``where`` in ``scope``; None when it selects everything."""
    must: list[qe.ConditionType] = [*conditions(scope, where), *extra]
    return qe.Filter(must=must) if must else None


def _index_operations(scope: Scope) -> list[qe.UpdateOperation]:
    operations = [
        qe.UpdateOperation.create_field_index(model.TWIN_ID, qe.PayloadSchemaType.Keyword),
        qe.UpdateOperation.create_field_index(model.MEMORY_TYPE, qe.PayloadSchemaType.Keyword),
        qe.UpdateOperation.create_field_index(
            model.CREATED_AT_MS, qe.IntegerIndexParams(lookup=True, range=True)
        ),
    ]
    if scope.shared:
        operations += [
            qe.UpdateOperation.create_field_index(
                TENANT_FIELD, qe.KeywordIndexParams(is_tenant=True)
            ),
            qe.UpdateOperation.create_field_index(TWIN_FIELD, qe.PayloadSchemaType.Keyword),
        ]
    return operations


def payload(scope: Scope, memory: Memory) -> dict[str, object]:
    data: dict[str, object] = memory.to_payload()
    if scope.tenant is not None:
        data[TENANT_FIELD] = scope.tenant
        data[TWIN_FIELD] = scope.twin
    return data


class EdgeStore:
    """MemoryStore on Qdrant Edge shards under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._shards: dict[str, qe.EdgeShard] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def description(self) -> str:
        return f"Qdrant Edge at {self._data_dir}"

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    def _path(self, collection: str) -> Path:
        return self._data_dir / collection

    def _write_lock(self, collection: str) -> asyncio.Lock:
        return self._locks.setdefault(collection, asyncio.Lock())

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

    async def exists(self, scope: Scope) -> bool:
        return await self._shard(scope.collection) is not None

    async def ensure(self, scope: Scope, dim: int) -> None:
        path = self._path(scope.collection)
        operations = _index_operations(scope)

        def create() -> qe.EdgeShard:
            # A directory without a config may be a create that died half-way: Edge
            # creates into it if it holds no segments, and refuses (data kept) otherwise.
            vectors = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
            return qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=vectors))

        shard = await self._shard(scope.collection)
        async with self._lock:
            if shard is None:
                shard = await self._run("create collection", create)
                self._shards[scope.collection] = shard

        # Creating an existing index is a no-op: this also repairs older shards.
        def create_indexes() -> None:
            for operation in operations:
                shard.update(operation)

        async with self._write_lock(scope.collection):
            await self._run("create indexes", create_indexes)

    async def upsert(self, scope: Scope, points: Sequence[tuple[Memory, Vector]]) -> None:
        shard = await self._require(scope)
        operation = qe.UpdateOperation.upsert_points(
            [qe.Point(m.id, list(v), payload(scope, m)) for m, v in points]
        )
        async with self._write_lock(scope.collection):
            await self._run("upsert", lambda: shard.update(operation))

    async def search(
        self, scope: Scope, vector: Vector, where: MemoryFilter, limit: int
    ) -> list[ScoredMemory]:
        shard = await self._require(scope)
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(list(vector)),
            filter=to_filter(scope, where),
            with_payload=True,
        )
        points = await self._run("search", lambda: shard.query(request))
        return [ScoredMemory(Memory.from_payload(p.id, p.payload), p.score) for p in points]

    async def count(self, scope: Scope, where: MemoryFilter) -> int:
        shard = await self._require(scope)
        request = qe.CountRequest(exact=True, filter=to_filter(scope, where))
        return await self._run("count", lambda: shard.count(request))

    async def newest(
        self, scope: Scope, where: MemoryFilter, offset: int, limit: int
    ) -> list[Memory]:
        shard = await self._require(scope)
        request = qe.QueryRequest(
            limit=limit,
            offset=offset,
            query=qe.OrderBy(model.CREATED_AT_MS, qe.Direction.Desc),
            filter=to_filter(scope, where),
            with_payload=True,
        )
        points = await self._run("list", lambda: shard.query(request))
        return [Memory.from_payload(p.id, p.payload) for p in points]

    async def _delete_matching(self, scope: Scope, selector: qe.Filter, operation: str) -> int:
        shard = await self._require(scope)

        def delete() -> int:
            found = shard.count(qe.CountRequest(exact=True, filter=selector))
            if found:
                shard.update(qe.UpdateOperation.delete_points_by_filter(selector))
            return found

        async with self._write_lock(scope.collection):
            return await self._run(operation, delete)

    async def delete(self, scope: Scope, memory_ids: Sequence[str]) -> int:
        if not memory_ids:
            return 0
        selector = to_filter(scope, model.MemoryFilter(), qe.HasIdCondition(set(memory_ids)))
        assert selector is not None
        return await self._delete_matching(scope, selector, "delete")

    async def delete_before(self, scope: Scope, cutoff: datetime) -> int:
        older = qe.FieldCondition(
            model.CREATED_AT_MS, range=qe.RangeFloat(lt=float(_millis(cutoff)))
        )
        selector = to_filter(scope, model.MemoryFilter(), older)
        assert selector is not None
        return await self._delete_matching(scope, selector, "expire")

    async def refresh(self, scope: Scope, memory_id: str, created_at: datetime) -> bool:
        shard = await self._require(scope)
        selector = to_filter(scope, model.MemoryFilter(), qe.HasIdCondition({memory_id}))
        assert selector is not None
        fields = Memory.timestamp_payload(created_at)

        def touch() -> bool:
            if not shard.count(qe.CountRequest(exact=True, filter=selector)):
                return False
            shard.update(qe.UpdateOperation.set_payload_by_filter(selector, fields))
            return True

        async with self._write_lock(scope.collection):
            return await self._run("refresh", touch)

    async def backup(self, collections: Sequence[str], destination: Path) -> list[str]:
        """Copy the shards that exist into ``destination``, each flushed and quiesced."""
        copied: list[str] = []
        for collection in collections:
            shard = await self._shard(collection)
            if shard is None:
                continue
            target = destination / collection
            source = self._path(collection)

            def copy(
                shard: qe.EdgeShard = shard, source: Path = source, target: Path = target
            ) -> None:
                shard.flush()
                shutil.copytree(source, target)

            async with self._write_lock(collection):  # no write lands mid-copy
                await self._run("backup", copy)
            copied.append(collection)
        return copied

    async def _require(self, scope: Scope) -> qe.EdgeShard:
        shard = await self._shard(scope.collection)
        if shard is None:
            raise DependencyUnavailable(f"{ENGINE} collection {scope.collection} is missing")
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


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
