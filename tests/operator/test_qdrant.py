"""The operator's side of Qdrant on the real server: a health check, and reclaim in both
tenancy modes, of memories the memory service wrote (it owns the schema)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient

from phoenix_common import qdrant
from phoenix_common.errors import DependencyUnavailable
from phoenix_common.naming import Tenancy
from phoenix_memory.archive import Archive
from phoenix_memory.embed.local import LocalEmbedder
from phoenix_memory.model import ListRequest, NewMemory
from phoenix_memory.store.qdrant_server import QdrantServerStore
from phoenix_operator.api import Twin
from phoenix_operator.reconcile.qdrant import QdrantConnector, collections
from tests.memory.qdrant_server import QdrantEndpoint, qdrant_endpoint


@pytest.fixture(scope="module")
def server() -> Iterator[QdrantEndpoint]:
    try:
        with qdrant_endpoint() as endpoint:
            yield endpoint
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[LocalEmbedder]:
    model = await LocalEmbedder.load()
    yield model
    await model.close()


def test_collection_names_are_the_memory_services(twin_factory: Callable[..., Twin]) -> None:
    twin = twin_factory({"memory": {"namespaces": ["default", "threat.intel"]}})
    assert collections(twin) == ["phx.team-a.alice.default", "phx.team-a.alice.threat.intel"]
    shared = twin_factory({"memory": {"qdrant": {"tenancy": "payload"}}})
    assert collections(shared) == ["phx_shared_384"]
    # The operator's default applies to its own endpoint only; a twin's url means collection.
    assert collections(twin, "payload") == ["phx_shared_384"]
    own = twin_factory({"memory": {"qdrant": {"url": "http://q.db:6334"}}})
    assert collections(own, "payload") == ["phx.team-a.alice.default"]


async def test_the_health_check_needs_no_qdrant_client_and_names_an_unreachable_endpoint(
    server: QdrantEndpoint, twin_factory: Callable[..., Twin]
) -> None:
    twin = twin_factory({"memory": {"namespaces": ["a"]}})
    connector = QdrantConnector(default_url=server.grpc_url, local_path=None, timeout=10)
    assert await connector.check(twin, None) == ["phx.team-a.alice.a"]
    gone = twin_factory({"memory": {"qdrant": {"url": "http://127.0.0.1:9"}}})
    with pytest.raises(DependencyUnavailable, match=r"Qdrant at http://127\.0\.0\.1:9"):
        await connector.check(gone, None)


async def write(
    server: QdrantEndpoint, embedder: LocalEmbedder, twin: Twin, tenancy: Tenancy
) -> Archive:
    """Memories in each of the twin's namespaces, written by the memory service's own code."""
    store = QdrantServerStore.connect(server.grpc_url, api_key=None, timeout_s=10)
    archive = Archive(twin.ref, store, embedder, tenancy=tenancy)
    for namespace in twin.spec.memory.namespaces:
        await archive.commit(NewMemory(namespace, f"a memory in {namespace}", "agent"))
    return archive


@pytest.mark.parametrize("tenancy", ["collection", "payload"])
async def test_reclaim_deletes_the_twins_memories_and_nothing_else(
    server: QdrantEndpoint,
    embedder: LocalEmbedder,
    twin_factory: Callable[..., Twin],
    tenancy: Tenancy,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    spec = {"memory": {"namespaces": ["ops", "threat.intel"], "qdrant": {"tenancy": tenancy}}}
    doomed = twin_factory(spec, name=f"drop-{suffix}")
    kept = twin_factory(spec, name=f"drop-{suffix}-2")  # a name the other one prefixes
    connector = QdrantConnector(default_url=server.grpc_url, local_path=None, timeout=10)
    doomed_archive = await write(server, embedder, doomed, tenancy)
    kept_archive = await write(server, embedder, kept, tenancy)
    try:
        reclaimed = await connector.delete(doomed, None)
        assert reclaimed == (
            [f"phx_shared_384 (points of team-a/{doomed.name})"]
            if tenancy == "payload"
            else [f"phx.team-a.{doomed.name}.ops", f"phx.team-a.{doomed.name}.threat.intel"]
        )
        fresh = Archive(doomed.ref, doomed_archive.store, embedder, tenancy=tenancy)
        for namespace in ("ops", "threat.intel"):
            assert (await fresh.list(ListRequest(namespace))).total_count == 0
            assert (await kept_archive.list(ListRequest(namespace))).total_count == 1
        assert await connector.delete(doomed, None) == reclaimed  # idempotent
    finally:
        await doomed_archive.store.close()
        await kept_archive.store.close()


async def test_local_mode_reclaim_for_the_e2e_operator(
    twin_factory: Callable[..., Twin], tmp_path: Path
) -> None:
    """The test-only local mode (PHOENIX_QDRANT_LOCAL_PATH) still reclaims collections."""
    twin = twin_factory({"memory": {"namespaces": ["a", "b"], "embedding": {"dimension": 8}}})
    client = AsyncQdrantClient(path=str(tmp_path / "team-a"))
    try:
        from qdrant_client import models

        for name in ("phx.team-a.alice.a", "phx.team-a.other.a"):
            await client.create_collection(
                name, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
            )
    finally:
        await client.close()
    connector = QdrantConnector(default_url="http://unused:6334", local_path=tmp_path, timeout=5)
    assert await connector.check(twin, None) == ["phx.team-a.alice.a", "phx.team-a.alice.b"]
    assert await connector.delete(twin, None) == ["phx.team-a.alice.a", "phx.team-a.alice.b"]
    client = AsyncQdrantClient(path=str(tmp_path / "team-a"))
    try:
        remaining = [c.name for c in (await client.get_collections()).collections]
        assert remaining == ["phx.team-a.other.a"]
    finally:
        await client.close()


def test_one_client_builder_for_both_components() -> None:
    """The memory service's store and the operator's reclaim build clients the same way."""
    assert qdrant.describe("https://q.example:7334") == "q.example:7334"
    assert qdrant.describe("http://q") == "q:6334"
