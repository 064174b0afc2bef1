"""Backups of a twin's collections, on a schedule, with a retention count; and the restore.

- Qdrant server: a Qdrant snapshot of each of the twin's collections (the
  snapshot API; files stay in the server's snapshots directory). The newest
  ``keep`` snapshots of each collection are kept. Restore:
  ``python -m phoenix_memory.backup restore`` recovers a collection from one of
  them (Qdrant's snapshot recovery, over its REST port).
- Qdrant Edge: a consistent copy of each shard directory (flushed, with writes
  to it held for the copy) into ``<MEMORY_BACKUP_DIR>/<UTC time>/``; the newest
  ``keep`` copies are kept. Restore: with the service stopped, copy a backup's
  shard directories back into ``MEMORY_DATA_DIR`` (``restore-edge`` does it).

A twin's collections are found by name (``phoenix_common.naming``), so every
memory namespace is covered, including ones no spec lists. Payload tenancy has
no per-twin backup: the shared collection holds every tenant of the endpoint,
so it is snapshotted once by whoever runs that Qdrant, not by each twin.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from phoenix_common import qdrant
from phoenix_common.naming import TwinRef, parse_collection_name
from phoenix_memory.metrics import BACKUPS, LAST_BACKUP_SECONDS
from phoenix_memory.store.base import MemoryStore, backend_errors
from phoenix_memory.store.edge import EdgeStore

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient

    from phoenix_memory.store.qdrant_server import QdrantServerStore

logger = logging.getLogger(__name__)
STAMP = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True)
class Backup:
    """One backup run: when, and which collections it holds."""

    name: str
    collections: list[str]


def owned(names: list[str], twin: TwinRef) -> list[str]:
    """The collections among ``names`` that hold ``twin``'s memories (collection mode)."""
    return sorted(n for n in names if (parsed := parse_collection_name(n)) and parsed[0] == twin)


async def twin_collections(store: MemoryStore, twin: TwinRef) -> list[str]:
    if isinstance(store, EdgeStore):
        if not store.data_dir.is_dir():
            return []
        return owned([p.name for p in store.data_dir.iterdir() if p.is_dir()], twin)
    server = _server_store(store)
    with backend_errors("Qdrant", "list collections"):
        response = await server.client.get_collections()
    return owned([c.name for c in response.collections], twin)


def _server_store(store: MemoryStore) -> QdrantServerStore:
    from phoenix_memory.store.qdrant_server import QdrantServerStore  # noqa: PLC0415

    if not isinstance(store, QdrantServerStore):
        raise TypeError(f"no backups for {store.description}")
    return store


async def back_up(
    store: MemoryStore, twin: TwinRef, *, keep: int, backup_dir: Path, now: datetime
) -> Backup:
    """Back up every collection of ``twin`` now, then drop all but the newest ``keep``."""
    collections = await twin_collections(store, twin)
    name = now.astimezone(UTC).strftime(STAMP)
    if isinstance(store, EdgeStore):
        target = backup_dir / name
        partial = backup_dir / f".{name}.partial"
        copied = await store.backup(collections, partial)
        partial.mkdir(parents=True, exist_ok=True)
        partial.rename(target)  # a backup directory is complete or absent
        _prune_edge(backup_dir, keep)
        return Backup(name, copied)
    client = _server_store(store).client
    with backend_errors("Qdrant", "snapshot"):
        for collection in collections:
            await _create_distinct_snapshot(client, collection)
            snapshots = await client.list_snapshots(collection)
            for old in sorted(snapshots, key=lambda s: s.creation_time or "")[:-keep]:
                await client.delete_snapshot(collection, old.name, wait=True)
    return Backup(name, collections)


async def _create_distinct_snapshot(client: AsyncQdrantClient, collection: str) -> None:
    """Take a snapshot that does not replace an earlier one.

    Qdrant names a snapshot by the second it was taken, so a second backup within
    the same second would silently replace the first and leave one fewer than
    ``keep``. When the new name collides, wait for the next second and take it again.
    """
    before = {s.name for s in await client.list_snapshots(collection)}
    for _ in range(3):
        created = await client.create_snapshot(collection, wait=True)
        if created is None or created.name not in before:
            return
        await asyncio.sleep(1.0)
    raise RuntimeError(f"Qdrant kept reusing snapshot names for {collection}")


def _prune_edge(backup_dir: Path, keep: int) -> None:
    runs = sorted(p for p in backup_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in runs[:-keep]:
        shutil.rmtree(old)


async def schedule(
    store: MemoryStore, twin: TwinRef, *, interval_s: float, keep: int, backup_dir: Path
) -> None:
    """Back up every ``interval_s`` until cancelled; a failed run is logged and counted."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            done = await back_up(
                store, twin, keep=keep, backup_dir=backup_dir, now=datetime.now(UTC)
            )
        except Exception:
            BACKUPS.labels("failed").inc()
            logger.exception("backup failed")
            continue
        BACKUPS.labels("succeeded").inc()
        LAST_BACKUP_SECONDS.set_to_current_time()
        logger.info("backup done", extra={"backup": done.name, "collections": done.collections})


def restore_edge(backup: Path, data_dir: Path) -> list[str]:
    """Put a backup's shards back into ``data_dir`` (the service must be stopped): each
    collection in the backup replaces the one in ``data_dir``."""
    restored = []
    for shard in sorted(p for p in backup.iterdir() if p.is_dir()):
        target = data_dir / shard.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(shard, target)
        restored.append(shard.name)
    return restored


async def restore_snapshot(
    rest_url: str, collection: str, snapshot: str, *, api_key: str | None, snapshots_dir: str
) -> None:
    """Recover ``collection`` from a snapshot in the server's snapshots directory."""
    from qdrant_client import AsyncQdrantClient  # noqa: PLC0415

    client = AsyncQdrantClient(url=rest_url, api_key=api_key, check_compatibility=False)
    try:
        location = f"file://{snapshots_dir.rstrip('/')}/{collection}/{snapshot}"
        await client.recover_snapshot(collection, location=location, wait=True)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phoenix_memory.backup", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    edge = commands.add_parser("restore-edge", help="copy an Edge backup into a data directory")
    edge.add_argument("backup", type=Path, help="<MEMORY_BACKUP_DIR>/<UTC time>")
    edge.add_argument("data_dir", type=Path, help="MEMORY_DATA_DIR of the stopped service")
    server = commands.add_parser("restore", help="recover a collection from a Qdrant snapshot")
    server.add_argument("--rest-url", required=True, help="Qdrant's REST URL, e.g. http://q:6333")
    server.add_argument("--collection", required=True)
    server.add_argument("--snapshot", required=True, help="a name from the collection's list")
    server.add_argument(
        "--snapshots-dir", default="/qdrant/snapshots", help="the server's snapshots directory"
    )
    server.add_argument("--api-key-file", type=Path, help="file holding QDRANT_API_KEY")
    args = parser.parse_args(argv)
    if args.command == "restore-edge":
        names = restore_edge(args.backup, args.data_dir)
        print(f"restored {len(names)} collection(s): {', '.join(names)}")
        return 0
    api_key = args.api_key_file.read_text().strip() if args.api_key_file else None
    asyncio.run(
        restore_snapshot(
            args.rest_url,
            args.collection,
            args.snapshot,
            api_key=api_key,
            snapshots_dir=args.snapshots_dir,
        )
    )
    print(f"restored {args.collection} from {args.snapshot} at {qdrant.describe(args.rest_url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
