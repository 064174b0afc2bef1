"""The floor under QueryMemory: embed + the direct Qdrant query behind a bare gRPC hop.

``python -m bench.memory_hop_floor PORT QDRANT_URL COLLECTION FILTER_JSON REPLY_FILE``
serves ``memory.MemoryService/QueryMemory`` from a grpc.aio server with nothing
of phoenix-memory's around the work: no interceptors, no validation, no exact
count, no payload conversion. Each call embeds the query with the service's
embedder (the same classes, model and runtime, on a worker thread) and sends the
Qdrant query phoenix-memory sends (qdrant-client's gRPC stub, the same filter), then
answers with a canned reply: the bytes of a real QueryMemory reply, so the
response on the wire is as large as the service's.

So ``floor / direct`` is what any Python gRPC service in front of the same work
costs on this machine (the hop both ways, and the wake-ups of an idle server
and client around a ~15 ms call), and ``QueryMemory / floor`` is what
phoenix-memory itself adds on top of it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc
from qdrant_client import grpc as qdrant_grpc
from qdrant_client import models
from qdrant_client.conversions.conversion import RestToGrpc

from phoenix_common import qdrant
from phoenix_common.stubs import memory_pb2
from phoenix_memory.embed.batching import BatchingEmbedder
from phoenix_memory.embed.local import LocalEmbedder

METHOD = "/memory.MemoryService/QueryMemory"


async def serve(port: int, qdrant_url: str, collection: str, where: str, reply: bytes) -> None:
    embedder = BatchingEmbedder(await LocalEmbedder.load(batch_size=64), max_batch=64)
    client = qdrant.connect(qdrant_url, api_key=None, timeout_s=30)
    selector = models.Filter.model_validate_json(where) if where != "null" else None
    wire_filter = None if selector is None else RestToGrpc.convert_filter(selector)

    async def query_memory(request: memory_pb2.QueryMemoryRequest, context: Any) -> bytes:
        (vector,) = await embedder.embed([request.query])
        await client.grpc_points.Query(
            qdrant_grpc.QueryPoints(
                collection_name=collection,
                query=qdrant_grpc.Query(
                    nearest=qdrant_grpc.VectorInput(dense=qdrant_grpc.DenseVector(data=vector))
                ),
                filter=wire_filter,
                limit=request.top_k,
                with_payload=qdrant_grpc.WithPayloadSelector(enable=True),
            ),
            timeout=30,
        )
        return reply

    handler = grpc.unary_unary_rpc_method_handler(
        query_memory,
        request_deserializer=memory_pb2.QueryMemoryRequest.FromString,
        response_serializer=lambda canned: canned,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("memory.MemoryService", {"QueryMemory": handler})]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str]) -> None:
    port, qdrant_url, collection, where, reply_file = argv
    asyncio.run(serve(int(port), qdrant_url, collection, where, Path(reply_file).read_bytes()))


if __name__ == "__main__":
    main(sys.argv[1:])
