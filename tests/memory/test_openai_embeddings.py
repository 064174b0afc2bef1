"""EMBEDDING_PROVIDER=openai against a local server speaking POST /v1/embeddings.

The server answers with vectors of the real local model, so ranking is meaningful.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from phoenix_common.errors import DependencyUnavailable, InvalidInput
from phoenix_common.stubs import memory_pb2
from phoenix_memory.archive import Archive
from phoenix_memory.embed.base import Embedder
from phoenix_memory.embed.local import LocalEmbedder
from phoenix_memory.embed.openai import parse_response
from phoenix_memory.server import build_embedder, start
from phoenix_memory.settings import MemorySettings
from phoenix_memory.store.edge import EdgeStore

from .conftest import TWIN, memory_stub

API_KEY = "test-key"


class EmbeddingsAPI:
    """A tiny OpenAI-compatible /v1/embeddings server backed by the local model."""

    def __init__(self, model: LocalEmbedder, loop: asyncio.AbstractEventLoop) -> None:
        self.requests: list[dict[str, object]] = []
        self.fail = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append(body)
                if self.path != "/v1/embeddings" or api.fail:
                    return self._reply(500 if api.fail else 404, {"error": "no"})
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self._reply(401, {"error": "unauthorized"})
                texts = body["input"]
                vectors = asyncio.run_coroutine_threadsafe(model.embed(texts), loop).result(30)
                data = [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in reversed(list(enumerate(vectors)))  # order by index, not position
                ]
                self._reply(200, {"object": "list", "data": data, "model": body["model"]})

            def _reply(self, status: int, body: object) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
async def api(local_embedder: LocalEmbedder) -> AsyncIterator[EmbeddingsAPI]:
    # The handler thread embeds on the loop that runs the test, so take the running one.
    server = EmbeddingsAPI(local_embedder, asyncio.get_running_loop())
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def openai_settings(url: str, **overrides: object) -> MemorySettings:
    values: dict[str, object] = {
        "embedding_provider": "openai",
        "embedding_url": url,
        "embedding_api_key": API_KEY,
        "embedding_model": "all-minilm",
    }
    return MemorySettings.load(**(values | overrides))


@pytest.fixture
async def openai_embedder(api: EmbeddingsAPI) -> AsyncIterator[Embedder]:
    embedder = await build_embedder(openai_settings(api.url))
    yield embedder
    await embedder.close()


async def test_service_ranks_with_remote_embeddings(
    api: EmbeddingsAPI, openai_embedder: Embedder, tmp_path: Path
) -> None:
    assert openai_embedder.dim == 384
    server = await start(
        Archive(TWIN, EdgeStore(tmp_path), openai_embedder), heartbeat_interval_s=None
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = memory_stub(channel)
            for text in ("Invoices are paid on the first of the month.", "The dog chased a ball."):
                await stub.CommitMemory(memory_pb2.CommitMemoryRequest(content=text))
            reply = await stub.QueryMemory(
                memory_pb2.QueryMemoryRequest(query="a puppy playing fetch", top_k=2)
            )
            assert reply.results[0].content == "The dog chased a ball."
            assert reply.results[0].similarity > reply.results[1].similarity
            api.fail = True
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.QueryMemory(memory_pb2.QueryMemoryRequest(query="anything"))
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "embedding service" in (err.value.details() or "")
    finally:
        await server.stop(0)
    assert all(request["model"] == "all-minilm" for request in api.requests)
    assert all(isinstance(request["input"], list) for request in api.requests)


async def test_wrong_api_key_fails_at_startup(api: EmbeddingsAPI) -> None:
    with pytest.raises(
        DependencyUnavailable, match=r"embedding service .* failed: HTTPStatusError"
    ):
        await build_embedder(openai_settings(api.url, embedding_api_key="wrong"))


async def test_dimension_must_match_embedding_model_dim(api: EmbeddingsAPI) -> None:
    with pytest.raises(InvalidInput, match=r"EMBEDDING_MODEL_DIM=768 but .* produces 384"):
        await build_embedder(openai_settings(api.url, embedding_model_dim=768))


def test_response_vectors_follow_input_order_by_index() -> None:
    body = {"data": [{"index": 1, "embedding": [0, 1]}, {"index": 0, "embedding": [1, 0]}]}
    assert parse_response(body, 2) == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="got 2 embeddings for 3 inputs"):
        parse_response(body, 3)
    with pytest.raises(ValueError, match="no 'data' list"):
        parse_response({"error": "quota"}, 1)
