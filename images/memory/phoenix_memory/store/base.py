"""The storage interface every backend implements, and its error contract.

A backend stores points (a vector plus a ``Memory`` payload) in named
collections. Every method raises ``DependencyUnavailable`` when the engine
fails, never the engine's own exception: ``backend_errors`` does that wrapping.
Writes return only once they are durable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from phoenix_common.errors import DependencyUnavailable, PhoenixError
from phoenix_memory.model import Memory, MemoryFilter, ScoredMemory

logger = logging.getLogger(__name__)

Vector = Sequence[float]


class MemoryStore(Protocol):
    """Vector storage for memories, one collection per (twin, memory namespace)."""

    @property
    def description(self) -> str:
        """What the store is, for log lines and health messages (no secrets)."""
        ...

    async def ping(self) -> None:
        """Return if the engine answers; raise DependencyUnavailable otherwise."""
        ...

    async def collection_exists(self, collection: str) -> bool: ...

    async def create_collection(self, collection: str, dim: int) -> None:
        """Create a cosine collection of ``dim``-sized vectors, with payload indexes where the
        engine has them; on an existing collection, only (re)create missing indexes."""
        ...

    async def upsert(self, collection: str, points: Sequence[tuple[Memory, Vector]]) -> None:
        """Store the points and return once they are durable."""
        ...

    async def search(
        self, collection: str, vector: Vector, where: MemoryFilter, limit: int
    ) -> list[ScoredMemory]: ...

    async def count(self, collection: str, where: MemoryFilter) -> int: ...

    async def newest(
        self, collection: str, where: MemoryFilter, offset: int, limit: int
    ) -> list[Memory]:
        """Memories ordered by creation time, newest first."""
        ...

    async def delete(self, collection: str, memory_id: str) -> bool:
        """Delete one memory durably; False if there was none with that id."""
        ...

    async def close(self) -> None: ...


@contextmanager
def backend_errors(engine: str, operation: str) -> Iterator[None]:
    """Turn any engine failure into DependencyUnavailable; the detail goes to the log only."""
    try:
        yield
    except PhoenixError:
        raise
    except Exception as err:
        logger.warning(
            "storage operation failed",
            extra={"engine": engine, "operation": operation, "error": repr(err)[:500]},
        )
        raise DependencyUnavailable(
            f"{engine} is unavailable ({operation} failed); retry later"
        ) from err
