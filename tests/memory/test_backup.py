"""Backups and the documented restore bring every memory back, on both engines."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from phoenix_memory import backup
from phoenix_memory.archive import Archive
from phoenix_memory.model import ListRequest, MemoryQuery, NewMemory
from phoenix_memory.store.edge import EdgeStore
from phoenix_memory.store.qdrant_server import QdrantServerStore

from .conftest import SessionEmbedder, open_store, unique_twin
from .qdrant_server import QdrantEndpoint

NAMESPACES = ("ops", "threat.intel")
T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def fill(archive: Archive) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for namespace in NAMESPACES:
        items = [NewMemory(namespace, f"{namespace} memory {i}", "agent") for i in range(6)]
        ids[namespace] = {m.id for m in await archive.commit_many(items)}
    return ids


async def stored(archive: Archive) -> dict[str, set[str]]:
    return {
        ns: {m.id for m in (await archive.list(ListRequest(ns, page_size=100))).memories}
        for ns in NAMESPACES
    }


async def test_edge_backup_is_restored_whole_after_the_data_is_lost(
    embedder: SessionEmbedder, tmp_path: Path
) -> None:
    data, backups = tmp_path / "data", tmp_path / "backups"
    twin, neighbour = unique_twin(), unique_twin()
    store = EdgeStore(data)
    archive = Archive(twin, store, embedder)
    expected = await fill(archive)
    await Archive(neighbour, store, embedder).commit(NewMemory("ops", "not this twin's", "x"))
    for hour in range(3):  # three runs, keep two
        done = await backup.back_up(
            store, twin, keep=2, backup_dir=backups, now=T0 + timedelta(hours=hour)
        )
        assert done.collections == sorted(archive.collection(ns) for ns in NAMESPACES)
    runs = sorted(p.name for p in backups.iterdir())
    assert runs == [
        (T0 + timedelta(hours=h)).strftime(backup.STAMP) for h in (1, 2)
    ]  # the oldest was pruned, no partial directory left
    await store.close()

    for collection in (archive.collection(ns) for ns in NAMESPACES):
        for path in sorted((data / collection).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (data / collection).rmdir()  # the twin's data is gone
    restored = backup.main(["restore-edge", str(backups / runs[-1]), str(data)])
    assert restored == 0

    reopened = Archive(twin, EdgeStore(data), embedder)
    try:
        assert await stored(reopened) == expected
        found = await reopened.query(MemoryQuery("ops", "ops memory 3", top_k=1))
        assert found.hits[0].memory.content == "ops memory 3"
    finally:
        await reopened.close()


async def test_server_snapshots_are_kept_per_count_and_restore_every_memory(
    qdrant: QdrantEndpoint, embedder: SessionEmbedder, tmp_path: Path
) -> None:
    if qdrant.snapshots_dir is None:
        pytest.fail("QDRANT_SNAPSHOTS_DIR must name the server's snapshots directory")
    store = open_store("qdrant", tmp_path, qdrant)
    assert isinstance(store, QdrantServerStore)
    twin = unique_twin()
    archive = Archive(twin, store, embedder)
    try:
        expected = await fill(archive)
        for hour in range(3):
            await backup.back_up(
                store, twin, keep=2, backup_dir=tmp_path, now=T0 + timedelta(hours=hour)
            )
        collections = [archive.collection(ns) for ns in NAMESPACES]
        newest = {}
        for collection in collections:
            snapshots = await store.client.list_snapshots(collection)
            assert len(snapshots) == 2
            newest[collection] = max(snapshots, key=lambda s: s.creation_time or "").name
            await store.client.delete_collection(collection)  # disaster
        fresh = Archive(twin, store, embedder)  # as the service sees it after a restart
        assert await stored(fresh) == {ns: set() for ns in NAMESPACES}

        for collection, snapshot in newest.items():  # the documented command, as a user runs it
            done = await asyncio.create_subprocess_exec(
                *[
                    sys.executable,
                    "-m",
                    "phoenix_memory.backup",
                    "restore",
                    "--rest-url",
                    qdrant.rest_url,
                    "--collection",
                    collection,
                    "--snapshot",
                    snapshot,
                    "--snapshots-dir",
                    str(qdrant.snapshots_dir),
                ]
            )
            assert await asyncio.wait_for(done.wait(), 120) == 0
        assert await stored(archive) == expected  # the running service sees them again
    finally:
        await archive.close()
