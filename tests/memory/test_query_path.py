"""QueryMemory's steps: the exact count runs beside the embedding, and never outlives a
query that fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from phoenix_common.errors import DependencyUnavailable
from phoenix_memory.archive import Archive
from phoenix_memory.model import MemoryFilter, MemoryQuery, NewMemory, Scope
from phoenix_memory.store.edge import EdgeStore

from .conftest import TWIN, SessionEmbedder


class BrokenEmbedder:
    """The model failing mid-query (an unreachable embedding API, a closed executor)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.description = "an embedder that fails"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        await asyncio.sleep(0)
        raise DependencyUnavailable("the embedding service is unavailable")

    async def close(self) -> None:
        return None


class CountingStore(EdgeStore):
    """Qdrant Edge, recording how each exact count ended."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.counts: list[str] = []

    async def count(self, scope: Scope, where: MemoryFilter) -> int:
        try:
            total = await super().count(scope, where)
        except asyncio.CancelledError:
            self.counts.append("cancelled")
            raise
        self.counts.append("done")
        return total


async def test_the_count_beside_a_failed_embedding_is_cancelled_not_leaked(
    embedder: SessionEmbedder, tmp_path: Path
) -> None:
    store = CountingStore(tmp_path / "data")
    await Archive(TWIN, store, embedder).commit(
        NewMemory("ops", "the disk is filling up", twin_id="agent-1")
    )
    broken = Archive(TWIN, store, BrokenEmbedder(embedder.dim))
    before = asyncio.all_tasks()
    with pytest.raises(DependencyUnavailable, match="embedding service is unavailable"):
        await broken.query(MemoryQuery("ops", "disk"))
    assert asyncio.all_tasks() <= before  # the count task is finished, not running on
    assert len(store.counts) == 1
    await store.close()


async def test_a_query_counts_exactly_what_it_searched(
    embedder: SessionEmbedder, tmp_path: Path
) -> None:
    store = CountingStore(tmp_path / "data")
    archive = Archive(TWIN, store, embedder)
    for text in ("disk full on db-1", "disk full on db-2", "login from a new address"):
        await archive.commit(NewMemory("ops", text, twin_id="agent-1"))
    await archive.commit(NewMemory("ops", "disk full on db-3", twin_id="agent-2"))
    result = await archive.query(
        MemoryQuery("ops", "disk", top_k=2, filter=MemoryFilter(twin_id="agent-1"))
    )
    assert [hit.memory.twin_id for hit in result.hits] == ["agent-1", "agent-1"]
    assert result.total_count == 3
    assert store.counts == ["done"]
    await store.close()
