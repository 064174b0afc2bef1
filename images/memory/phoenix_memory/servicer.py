"""memory.MemoryService over gRPC: proto in, Archive call, proto out; nothing else.

Domain errors become status codes in phoenix_common.grpc_server's interceptor:
InvalidInput → INVALID_ARGUMENT, NotFound → NOT_FOUND, DependencyUnavailable →
UNAVAILABLE.
"""

from __future__ import annotations

import grpc

from phoenix_common import __version__
from phoenix_common.errors import DependencyUnavailable
from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from phoenix_memory import convert
from phoenix_memory.archive import Archive

SERVICE_NAME: str = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, archive: Archive) -> None:
        self._archive = archive

    async def QueryMemory(
        self, request: memory_pb2.QueryMemoryRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.QueryMemoryResponse:
        query = convert.memory_query(request)
        result = await self._archive.query(query)
        return convert.query_response(result, namespace=query.namespace)

    async def CommitMemory(
        self, request: memory_pb2.CommitMemoryRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.CommitMemoryResponse:
        memory = await self._archive.commit(convert.new_memory(request))
        return memory_pb2.CommitMemoryResponse(memory_id=memory.id, success=True)

    async def HealthCheck(
        self, request: memory_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.HealthCheckResponse:
        try:
            await self._archive.store.ping()
        except DependencyUnavailable:
            return memory_pb2.HealthCheckResponse(
                status="unhealthy", version=__version__, message="Qdrant connection failed"
            )
        return memory_pb2.HealthCheckResponse(
            status="healthy", version=__version__, message="Memory service is operational"
        )

    async def ListMemories(
        self, request: memory_pb2.ListMemoriesRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.ListMemoriesResponse:
        listing = convert.list_request(request)
        page = await self._archive.list(listing)
        return convert.list_response(page, namespace=listing.namespace)

    async def DeleteMemory(
        self, request: memory_pb2.DeleteMemoryRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.DeleteMemoryResponse:
        await self._archive.delete(*convert.delete_request(request))
        return memory_pb2.DeleteMemoryResponse(success=True)
