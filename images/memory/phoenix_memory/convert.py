"""Proto in, validated domain request out (and back): pure, raises InvalidInput.

Every message names the field, the rule and the value received.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from phoenix_common.errors import InvalidInput
from phoenix_common.naming import validate_memory_namespace
from phoenix_common.stubs import memory_pb2
from phoenix_memory import model


def _twin_id(value: str) -> str:
    if len(value) > model.MAX_TWIN_ID_CHARS:
        raise InvalidInput(
            f"twin_id is {len(value)} characters long; at most {model.MAX_TWIN_ID_CHARS} allowed"
        )
    return value


def _choice(field: str, value: str, allowed: Iterable[str], default: str | None) -> str:
    options = tuple(allowed)
    if not value and default is not None:
        return default
    if value not in options:
        raise InvalidInput(f"{field} {value[:40]!r} is not one of {', '.join(options)}")
    return value


def _text(field: str, value: str, max_bytes: int) -> str:
    if not value.strip():
        raise InvalidInput(f"{field} must not be empty")
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise InvalidInput(f"{field} is {size} bytes; at most {max_bytes} bytes (UTF-8) allowed")
    return value


def _metadata(values: Mapping[str, str]) -> dict[str, str]:
    if len(values) > model.MAX_METADATA_ENTRIES:
        raise InvalidInput(
            f"metadata has {len(values)} entries; at most {model.MAX_METADATA_ENTRIES} allowed"
        )
    for key, value in values.items():
        if not key or len(key) > model.MAX_METADATA_KEY_CHARS:
            raise InvalidInput(
                f"metadata key {key[:40]!r} must be 1-{model.MAX_METADATA_KEY_CHARS} characters"
            )
        if len(value.encode("utf-8")) > model.MAX_METADATA_VALUE_BYTES:
            raise InvalidInput(
                f"metadata value of {key!r} is longer than {model.MAX_METADATA_VALUE_BYTES} bytes"
            )
    return dict(values)


def _filter(twin_id: str, memory_types: Iterable[str]) -> model.MemoryFilter:
    types = tuple(dict.fromkeys(memory_types))  # dedupe, keep order
    for memory_type in types:
        _choice("memory_types entry", memory_type, model.MEMORY_TYPES, None)
    return model.MemoryFilter(twin_id=_twin_id(twin_id), memory_types=types)


def new_memory(request: memory_pb2.CommitMemoryRequest) -> model.NewMemory:
    return model.NewMemory(
        namespace=validate_memory_namespace(request.namespace),
        content=_text("content", request.content, model.MAX_CONTENT_BYTES),
        twin_id=_twin_id(request.twin_id),
        memory_type=_choice(
            "memory_type", request.memory_type, model.MEMORY_TYPES, model.DEFAULT_MEMORY_TYPE
        ),
        risk_level=_choice(
            "risk_level", request.risk_level, model.RISK_LEVELS, model.DEFAULT_RISK_LEVEL
        ),
        metadata=_metadata(request.metadata),
    )


def memory_query(request: memory_pb2.QueryMemoryRequest) -> model.MemoryQuery:
    top_k = request.top_k or model.DEFAULT_TOP_K
    if not 1 <= top_k <= model.MAX_TOP_K:
        raise InvalidInput(
            f"top_k must be between 1 and {model.MAX_TOP_K} (0 means {model.DEFAULT_TOP_K}), "
            f"got {request.top_k}"
        )
    return model.MemoryQuery(
        namespace=validate_memory_namespace(request.namespace),
        text=_text("query", request.query, model.MAX_QUERY_BYTES),
        top_k=top_k,
        filter=_filter(request.twin_id, request.memory_types),
    )


def list_request(request: memory_pb2.ListMemoriesRequest) -> model.ListRequest:
    page = request.page or 1
    page_size = request.page_size or model.DEFAULT_PAGE_SIZE
    if page < 1:
        raise InvalidInput(f"page must be 1 or more (0 means 1), got {request.page}")
    if not 1 <= page_size <= model.MAX_PAGE_SIZE:
        raise InvalidInput(
            f"page_size must be between 1 and {model.MAX_PAGE_SIZE} "
            f"(0 means {model.DEFAULT_PAGE_SIZE}), got {request.page_size}"
        )
    if page * page_size > model.MAX_LIST_DEPTH:
        raise InvalidInput(
            f"page {page} of size {page_size} is past the first {model.MAX_LIST_DEPTH} "
            "memories; use QueryMemory to search deeper"
        )
    return model.ListRequest(
        namespace=validate_memory_namespace(request.namespace),
        page=page,
        page_size=page_size,
        filter=_filter(request.twin_id, ()),
    )


def memory_id(value: str) -> str:
    """A memory id is the UUID CommitMemory returned; normalised to its canonical form."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput(f"memory_id {value[:40]!r} is not a UUID") from None


def delete_request(request: memory_pb2.DeleteMemoryRequest) -> tuple[str, str]:
    """The (namespace, memory id) a DeleteMemory request names."""
    return validate_memory_namespace(request.namespace), memory_id(request.memory_id)


def memory_result(memory: model.Memory, similarity: float = 0.0) -> memory_pb2.MemoryResult:
    return memory_pb2.MemoryResult(
        id=memory.id,
        timestamp=memory.timestamp,
        content=memory.content,
        agent_id=memory.twin_id,
        risk_level=memory.risk_level,
        similarity=similarity,
        memory_type=memory.memory_type,
        metadata=dict(memory.metadata),
    )


def query_response(result: model.QueryResult, namespace: str) -> memory_pb2.QueryMemoryResponse:
    return memory_pb2.QueryMemoryResponse(
        results=[memory_result(hit.memory, hit.score) for hit in result.hits],
        total_count=result.total_count,
        namespace=namespace,
    )


def list_response(page: model.MemoryPage, namespace: str) -> memory_pb2.ListMemoriesResponse:
    return memory_pb2.ListMemoriesResponse(
        memories=[memory_result(memory) for memory in page.memories],
        total_count=page.total_count,
        page=page.page,
        page_size=page.page_size,
        total_pages=page.total_pages,
        namespace=namespace,
    )
