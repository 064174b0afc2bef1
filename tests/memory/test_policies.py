"""Per-namespace retention and near-duplicate commits, on the real engines in both modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from phoenix_common.naming import Tenancy
from phoenix_common.stubs import memory_pb2
from phoenix_memory.archive import Archive
from phoenix_memory.model import ListRequest, NamespacePolicy, NewMemory
from phoenix_memory.server import start
from phoenix_memory.store.base import MemoryStore

from .conftest import Engine, SessionEmbedder, memory_stub, open_store, unique_twin
from .qdrant_server import QdrantEndpoint
from .test_tenancy import MODES

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=MODES, ids=["-".join(m) for m in MODES])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[MemoryStore, Tenancy]]:
    kind: Engine
    kind, tenancy = request.param
    qdrant: QdrantEndpoint | None = request.getfixturevalue("qdrant") if kind == "qdrant" else None
    store = open_store(kind, tmp_path / "edge", qdrant)
    yield store, tenancy
    await store.close()


def deleted(namespace: str, reason: str) -> float:
    labels = {"namespace": namespace, "reason": reason}
    return REGISTRY.get_sample_value("phoenix_memory_retention_deleted_total", labels) or 0.0


async def test_retention_deletes_the_oldest_and_nothing_outside_its_namespace(
    engine: tuple[MemoryStore, Tenancy], embedder: SessionEmbedder
) -> None:
    store, tenancy = engine
    clock = Clock()
    twin, neighbour = unique_twin(), unique_twin()
    policy = NamespacePolicy(max_age=timedelta(hours=1), max_count=3)
    archive = Archive(
        twin, store, embedder, tenancy=tenancy, policies={"logs": policy}, clock=clock
    )
    other = Archive(neighbour, store, embedder, tenancy=tenancy, clock=clock)
    # Seven log lines 20 minutes apart starting two hours ago; the twin's other namespace
    # and another twin's "logs" get the same old memories.
    for minute in range(7):
        clock.now = T0 - timedelta(hours=2) + timedelta(minutes=minute * 20)
        for target, namespace in ((archive, "logs"), (archive, "notes"), (other, "logs")):
            await target.commit(NewMemory(namespace, f"log line {minute}", "agent"))
    clock.now = T0
    age_before, count_before = deleted("logs", "max_age"), deleted("logs", "max_count")

    assert await archive.enforce_retention() == {"logs": 4}

    # Lines 0-2 (2 h to 80 min old) are older than max_age; line 3 is exactly an hour old,
    # not older, but the oldest of the 4 left over max_count.
    kept = await archive.list(ListRequest("logs", page_size=100))
    assert [m.content for m in kept.memories] == ["log line 6", "log line 5", "log line 4"]
    assert deleted("logs", "max_age") - age_before == 3
    assert deleted("logs", "max_count") - count_before == 1
    assert (await archive.list(ListRequest("notes"))).total_count == 7
    assert (await other.list(ListRequest("logs"))).total_count == 7

    # Newer memories push the count limit: the oldest go first.
    for minute in range(2):
        clock.now = T0 + timedelta(minutes=minute + 1)
        await archive.commit(NewMemory("logs", f"fresh line {minute}", "agent"))
    assert await archive.enforce_retention() == {"logs": 2}
    kept = await archive.list(ListRequest("logs", page_size=100))
    assert [m.content for m in kept.memories] == ["fresh line 1", "fresh line 0", "log line 6"]
    assert deleted("logs", "max_count") - count_before == 3


async def test_a_near_duplicate_refreshes_the_memory_it_matches(
    engine: tuple[MemoryStore, Tenancy], embedder: SessionEmbedder
) -> None:
    store, tenancy = engine
    clock = Clock()
    policies = {"notes": NamespacePolicy(dedup_threshold=0.95)}
    archive = Archive(
        unique_twin(), store, embedder, tenancy=tenancy, policies=policies, clock=clock
    )
    first = await archive.commit(NewMemory("notes", "The backup job failed at 02:00 UTC.", "ops"))
    clock.now = T0 + timedelta(minutes=5)
    again = await archive.commit(NewMemory("notes", "The backup job failed at 02:00 UTC", "ops"))
    assert again.id == first.id
    assert again.created_at == clock.now
    page = await archive.list(ListRequest("notes"))
    assert page.total_count == 1
    assert page.memories[0].timestamp == again.timestamp  # the stored timestamp moved

    # Not duplicates: another agent (twin_id), another type, or different content.
    other_agent = await archive.commit(
        NewMemory("notes", "The backup job failed at 02:00 UTC.", "dev")
    )
    other_type = await archive.commit(
        NewMemory("notes", "The backup job failed at 02:00 UTC.", "ops", memory_type="Semantic")
    )
    different = await archive.commit(NewMemory("notes", "The cat sat on the mat.", "ops"))
    assert len({first.id, other_agent.id, other_type.id, different.id}) == 4
    # A namespace without a threshold keeps every commit.
    await archive.commit(NewMemory("raw", "same text", "ops"))
    await archive.commit(NewMemory("raw", "same text", "ops"))
    assert (await archive.list(ListRequest("raw"))).total_count == 2


async def test_commit_memory_answers_with_the_id_it_kept(
    embedder: SessionEmbedder, tmp_path: Path
) -> None:
    store = open_store("edge", tmp_path, None)
    archive = Archive(
        unique_twin(), store, embedder, policies={"ops": NamespacePolicy(dedup_threshold=0.9)}
    )
    server = await start(archive, heartbeat_interval_s=None)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = memory_stub(channel)
            request = memory_pb2.CommitMemoryRequest(content="disk is full", namespace="ops")
            first = await stub.CommitMemory(request)
            second = await stub.CommitMemory(request)
            assert second.success
            assert second.memory_id == first.memory_id
    finally:
        await server.stop(0)
