"""The vector_query tool: a QueryMemory call to the memory service, with a deadline.

``args = [query, namespace?, top_k?]``, or the original's ``key=value`` strings
(tool_args.py); the request's own ``namespace`` is used when none is given. Each
result becomes one JSON line of stdout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from phoenix_common.errors import DependencyUnavailable, InvalidInput
from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from phoenix_tools import tool_args

DEFAULT_TOP_K = 10
MAX_QUERY_CHARS = 8192


@dataclass(frozen=True)
class VectorQuery:
    query: str
    namespace: str
    top_k: int


def parse_args(args: Sequence[str], request_namespace: str) -> VectorQuery:
    """The query from the tool's arguments; InvalidInput with the reason if malformed."""
    args = tool_args.vector_query(args)
    if not args or not args[0].strip():
        raise InvalidInput("vector_query needs args[0]: the query text")
    if len(args) > 3:
        raise InvalidInput(f"vector_query takes at most 3 args, got {len(args)}")
    if len(args[0]) > MAX_QUERY_CHARS:
        raise InvalidInput(f"vector_query query is longer than {MAX_QUERY_CHARS} characters")
    namespace = args[1] if len(args) > 1 and args[1] else request_namespace
    top_k = DEFAULT_TOP_K
    if len(args) > 2 and args[2]:
        try:
            top_k = int(args[2])
        except ValueError:
            raise InvalidInput(f"vector_query top_k must be an integer, got {args[2]!r}") from None
        if not 1 <= top_k <= 100:
            raise InvalidInput(f"vector_query top_k must be between 1 and 100, got {top_k}")
    return VectorQuery(args[0], namespace, top_k)


class MemoryClient:
    """One channel to the memory service for the process's lifetime."""

    def __init__(self, address: str, timeout_s: float) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = memory_pb2_grpc.MemoryServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def query(self, twin_id: str, query: VectorQuery) -> list[str]:
        """Result lines (JSON objects); DependencyUnavailable if memory cannot answer."""
        request = memory_pb2.QueryMemoryRequest(
            query=query.query, namespace=query.namespace, twin_id=twin_id, top_k=query.top_k
        )
        try:
            response = await self._stub.QueryMemory(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidInput(f"memory service: {err.details()}") from None
            raise DependencyUnavailable(
                f"memory service at {self._address} did not answer vector_query: {err.code().name}"
            ) from None
        return [
            json.dumps(
                {
                    "id": r.id,
                    "similarity": round(r.similarity, 6),
                    "content": r.content,
                    "memory_type": r.memory_type,
                    "risk_level": r.risk_level,
                    "timestamp": r.timestamp,
                },
                ensure_ascii=False,
            )
            for r in response.results
        ]

    async def close(self) -> None:
        await self._channel.close()
