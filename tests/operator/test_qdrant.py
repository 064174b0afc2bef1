"""Collections are ensured and reclaimed through qdrant-client (local mode, the test path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from qdrant_client import AsyncQdrantClient

from phoenix_common.errors import DependencyUnavailable
from phoenix_operator.api import Twin
from phoenix_operator.reconcile.qdrant import QdrantConnector, collections


def test_collection_names_are_the_memory_services(twin_factory: Callable[..., Twin]) -> None:
    twin = twin_factory({"memory": {"namespaces": ["default", "work_2"]}})
    assert collections(twin) == ["phx.team-a.alice.default", "phx.team-a.alice.work_2"]


async def test_collections_are_created_once_with_the_twins_vector_size(
    twin_factory: Callable[..., Twin], tmp_path: Path
) -> None:
    twin = twin_factory({"memory": {"namespaces": ["a", "b"], "embedding": {"dimension": 8}}})
    connector = QdrantConnector(default_url="http://unused:6334", local_path=tmp_path, timeout=5)
    assert await connector.ensure(twin, None) == ["phx.team-a.alice.a", "phx.team-a.alice.b"]
    assert await connector.ensure(twin, None) == ["phx.team-a.alice.a", "phx.team-a.alice.b"]
    client = AsyncQdrantClient(path=str(tmp_path / "team-a"))
    try:
        info = await client.get_collection("phx.team-a.alice.a")
        assert info.config.params.vectors.size == 8  # type: ignore[union-attr]
    finally:
        await client.close()
    assert await connector.delete(twin, None) == ["phx.team-a.alice.a", "phx.team-a.alice.b"]
    client = AsyncQdrantClient(path=str(tmp_path / "team-a"))
    try:
        assert (await client.get_collections()).collections == []
    finally:
        await client.close()


async def test_an_unreachable_qdrant_is_a_dependency_error_naming_it(
    twin_factory: Callable[..., Twin], tmp_path: Path
) -> None:
    twin = twin_factory({"memory": {"qdrant": {"url": "http://127.0.0.1:9"}}})
    connector = QdrantConnector(default_url="http://unused:6334", local_path=tmp_path, timeout=1)
    with pytest.raises(DependencyUnavailable, match=r"Qdrant at http://127\.0\.0\.1:9"):
        await connector.ensure(twin, None)
