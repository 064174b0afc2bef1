"""The Neural Archive's domain types and limits: pure data, no IO.

A memory is stored as one Qdrant point whose payload keeps the original
service's keys (``id``, ``timestamp``, ``content``, ``twin_id``,
``memory_type``, ``risk_level``, ``metadata``) plus ``created_at_ms``, an
integer the newest-first listing orders by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MEMORY_TYPES = ("Episodic", "Semantic", "RAGSource", "Reflection")
RISK_LEVELS = ("Low", "Medium", "High", "Critical")
DEFAULT_MEMORY_TYPE = "Episodic"
DEFAULT_RISK_LEVEL = "Low"

MAX_CONTENT_BYTES = 32 * 1024
MAX_QUERY_BYTES = 32 * 1024
MAX_TWIN_ID_CHARS = 256
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_VALUE_BYTES = 4 * 1024
DEFAULT_TOP_K = 10
MAX_TOP_K = 100
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Newest-first paging walks past every earlier page; deeper pages are refused.
MAX_LIST_DEPTH = 10_000

# Payload keys: the ones filters and ordering use have payload indexes.
TWIN_ID = "twin_id"
MEMORY_TYPE = "memory_type"
CREATED_AT_MS = "created_at_ms"


@dataclass(frozen=True)
class NamespacePolicy:
    """Retention and dedup of one memory namespace; None means no limit / no dedup."""

    max_age: timedelta | None = None
    max_count: int | None = None
    dedup_threshold: float | None = None
    """A commit whose cosine similarity to an existing memory of the same twin_id and
    memory_type is at least this refreshes that memory's timestamp instead of adding one."""

    @property
    def retains(self) -> bool:
        return self.max_age is not None or self.max_count is not None


@dataclass(frozen=True)
class Scope:
    """Where one tenant's memories live, and the only way a store is addressed.

    Collection mode: a collection of its own (``tenant`` None). Payload mode: the
    shared collection plus the tenant key, which the store adds to every filter
    and writes on every point, so no read or write can leave the tenant.
    """

    collection: str
    tenant: str | None = None
    twin: str | None = None

    def __post_init__(self) -> None:
        if (self.tenant is None) != (self.twin is None):
            raise ValueError("a shared-collection scope needs both its tenant and twin keys")

    @property
    def shared(self) -> bool:
        return self.tenant is not None


@dataclass(frozen=True)
class MemoryFilter:
    """Which memories of a namespace a query or listing sees; empty means all."""

    twin_id: str = ""
    memory_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewMemory:
    """A validated CommitMemory request."""

    namespace: str
    content: str
    twin_id: str
    memory_type: str = DEFAULT_MEMORY_TYPE
    risk_level: str = DEFAULT_RISK_LEVEL
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Memory:
    """A stored memory."""

    id: str
    created_at: datetime
    content: str
    twin_id: str
    memory_type: str
    risk_level: str
    metadata: Mapping[str, str]

    @property
    def timestamp(self) -> str:
        """RFC 3339 in UTC with millisecond precision, e.g. 2026-01-02T03:04:05.678Z."""
        return format_timestamp(self.created_at)

    @staticmethod
    def timestamp_payload(created_at: datetime) -> dict[str, Any]:
        """The payload fields that date a memory (what a dedup refresh rewrites)."""
        return {
            "timestamp": format_timestamp(created_at),
            CREATED_AT_MS: int(created_at.timestamp() * 1000),
        }

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.timestamp_payload(self.created_at),
            "content": self.content,
            TWIN_ID: self.twin_id,
            MEMORY_TYPE: self.memory_type,
            "risk_level": self.risk_level,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_payload(cls, point_id: object, payload: Mapping[str, Any] | None) -> Memory:
        """Rebuild a memory from a point; tolerant of points written by other tools."""
        payload = payload or {}
        millis = payload.get(CREATED_AT_MS)
        if isinstance(millis, int | float):
            created_at = datetime.fromtimestamp(millis / 1000, tz=UTC)
        else:
            created_at = _parse_timestamp(payload.get("timestamp"))
        metadata = payload.get("metadata")
        return cls(
            id=str(point_id),
            created_at=created_at,
            content=str(payload.get("content", "")),
            twin_id=str(payload.get(TWIN_ID, "")),
            memory_type=str(payload.get(MEMORY_TYPE, "")),
            risk_level=str(payload.get("risk_level", "")),
            metadata=(
                {str(k): str(v) for k, v in metadata.items()}
                if isinstance(metadata, Mapping)
                else {}
            ),
        )


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, e.g. 2026-01-02T03:04:05.678Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return datetime.fromtimestamp(0, tz=UTC)


@dataclass(frozen=True)
class ScoredMemory:
    """A query hit: ``score`` is the vector store's cosine similarity, higher is closer."""

    memory: Memory
    score: float


@dataclass(frozen=True)
class MemoryQuery:
    """A validated QueryMemory request."""

    namespace: str
    text: str
    top_k: int = DEFAULT_TOP_K
    filter: MemoryFilter = MemoryFilter()


@dataclass(frozen=True)
class QueryResult:
    hits: list[ScoredMemory]
    total_count: int
    """How many memories in the namespace match the filter (not just this page)."""


@dataclass(frozen=True)
class ListRequest:
    """A validated ListMemories request; ``page`` is 1-based."""

    namespace: str
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    filter: MemoryFilter = MemoryFilter()

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class MemoryPage:
    memories: list[Memory]
    total_count: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return -(-self.total_count // self.page_size)
