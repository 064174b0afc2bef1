"""The storage interface every backend implements, and its error contract.

A backend stores points (a vector plus a ``Memory`` payload) for a ``Scope``: a
collection of its own (collection tenancy), or the tenant's slice of a shared
collection (payload tenancy), where the backend adds the tenant condition to
every read, write and delete itself. Every method raises
``DependencyUnavailable`` when the engine fails, never the engine's own
exception: ``backend_errors`` does that wrapping. Writes return only once they
are durable.

The memory service owns the schema: ``ensure`` creates a collection with the
vector size, cosine distance and the payload indexes its filters need.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from phoenix_common.errors import DependencyUnavailable, PhoenixError
from phoenix_memory.model import Memory, MemoryFilter, Scope, ScoredMemory

logger = logging.getLogger(__name__)

Vector = Sequence[float]


class MemoryStore(Protocol):
    """Vector storage for memories, addressed by Scope."""

    @property
    def description(self) -> str:
        """What the store is, for log lines and health messages (no secrets)."""
        ...

    async def ping(self) -> None:
        """Return if the engine answers; raise DependencyUnavailable otherwise."""
        ...

    async def exists(self, scope: Scope) -> bool:
        """Whether the scope's collection exists (its tenant may still hold nothing)."""
        ...

    async def ensure(self, scope: Scope, dim: int) -> None:
        """Create the scope's collection (cosine, ``dim``-sized vectors, payload indexes,
        the tenant index in a shared collection) if missing; add any missing index."""
        ...

    async def upsert(self, scope: Scope, points: Sequence[tuple[Memory, Vector]]) -> None:
        """Store the points and return once they are durable."""
        ...

    async def search(
        self, scope: Scope, vector: Vector, where: MemoryFilter, limit: int
    ) -> list[ScoredMemory]: ...

    async def count(self, scope: Scope, where: MemoryFilter) -> int: ...

    async def newest(
        self, scope: Scope, where: MemoryFilter, offset: int, limit: int
    ) -> list[Memory]:
        """Memories ordered by creation time, newest first."""
        ...

    async def delete(self, scope: Scope, memory_ids: Sequence[str]) -> int:
        """Delete those of the memories the scope holds, durably; how many there were."""
        ...

    async def delete_before(self, scope: Scope, cutoff: datetime) -> int:
        """Delete the scope's memories created before ``cutoff``; how many there were."""
        ...

    async def refresh(self, scope: Scope, memory_id: str, created_at: datetime) -> bool:
        """Set a memory's timestamp to ``created_at``; False if the scope holds no such id."""
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
