"""Fixtures for the memory service: one real embedder per session, real Qdrant engines,
real gRPC servers on 127.0.0.1:0, and grpcurl built once into a version-keyed cache."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import grpc
import pytest

from phoenix_common.naming import TwinRef
from phoenix_common.stubs import memory_pb2_grpc
from phoenix_memory.archive import Archive
from phoenix_memory.embed.base import Embedder
from phoenix_memory.embed.batching import BatchingEmbedder
from phoenix_memory.embed.local import LocalEmbedder
from phoenix_memory.server import MemoryServer, start
from phoenix_memory.store.base import MemoryStore
from phoenix_memory.store.edge import EdgeStore
from phoenix_memory.store.qdrant_server import QdrantServerStore

REPO = Path(__file__).resolve().parents[2]
GRPCURL_VERSION = "v1.9.3"
TWIN = TwinRef("team-a", "sentinel")

Backend = Literal["edge", "qdrant-local"]
BACKENDS: tuple[Backend, ...] = ("edge", "qdrant-local")


class SessionEmbedder:
    """The session's model, shared by every server; a server's close() leaves it loaded."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def description(self) -> str:
        return self.inner.description

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.inner.embed(texts)

    async def close(self) -> None:
        return None


@pytest.fixture(scope="session")
async def local_embedder() -> AsyncIterator[LocalEmbedder]:
    embedder = await LocalEmbedder.load()
    yield embedder
    await embedder.close()


@pytest.fixture(scope="session")
def embedder(local_embedder: LocalEmbedder) -> SessionEmbedder:
    return SessionEmbedder(BatchingEmbedder(local_embedder))


def open_store(backend: Backend, path: Path) -> MemoryStore:
    if backend == "edge":
        return EdgeStore(path)
    return QdrantServerStore.local(path)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    kind: Backend = request.param
    return kind


StartServer = Callable[..., Awaitable[MemoryServer]]


@pytest.fixture
async def start_server(
    embedder: SessionEmbedder,
) -> AsyncIterator[StartServer]:
    """Start a real server around a store; every server started is stopped at teardown."""
    started: list[MemoryServer] = []

    async def _start(store: MemoryStore, heartbeat_s: float | None = None) -> MemoryServer:
        server = await start(
            Archive(TWIN, store, embedder), host="127.0.0.1", heartbeat_interval_s=heartbeat_s
        )
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.stop(0)


@pytest.fixture
def storage(backend: Backend, tmp_path: Path) -> Path:
    return tmp_path / backend


@pytest.fixture
async def server(backend: Backend, storage: Path, start_server: StartServer) -> MemoryServer:
    return await start_server(open_store(backend, storage))


@pytest.fixture
async def channel(server: MemoryServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


def memory_stub(channel: grpc.aio.Channel) -> memory_pb2_grpc.MemoryServiceStub:
    stub_class: Any = memory_pb2_grpc.MemoryServiceStub  # the generated stub is untyped
    stub: memory_pb2_grpc.MemoryServiceStub = stub_class(channel)
    return stub


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> memory_pb2_grpc.MemoryServiceStub:
    return memory_stub(channel)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def grpcurl() -> Path:
    """grpcurl, built with `go install` once per version into ~/.cache/phoenixtwin/tools."""
    cache = Path.home() / ".cache" / "phoenixtwin" / "tools" / f"grpcurl-{GRPCURL_VERSION}"
    binary = cache / "grpcurl"
    if not binary.is_file():
        go = shutil.which("go")
        if go is None:
            pytest.fail(
                "grpcurl is not built and Go is not installed to build it (.ci/run needs Go)"
            )
        subprocess.run(
            [go, "install", f"github.com/fullstorydev/grpcurl/cmd/grpcurl@{GRPCURL_VERSION}"],
            env={**os.environ, "GOBIN": str(cache)},
            check=True,
            timeout=600,
        )
    return binary


def service_env(**overrides: str) -> dict[str, str]:
    """The environment of a phoenix-memory subprocess: no .env surprises, text logs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MEMORY_", "QDRANT_", "EMBEDDING_", "TWIN_"))
    }
    env.update(
        PHOENIX_LOG_FORMAT="text",
        MEMORY_METRICS_PORT="0",
        MEMORY_GRPC_HOST="127.0.0.1",
        HF_HUB_OFFLINE="1",
    )
    env.update(overrides)
    return env


PHOENIX_MEMORY = Path(sys.executable).with_name("phoenix-memory")


@pytest.fixture
def run_service(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `phoenix-memory` as a real subprocess; killed at teardown if still running."""
    processes: list[subprocess.Popen[str]] = []

    def _run(**env: str) -> subprocess.Popen[str]:
        log = (tmp_path / f"phoenix-memory-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            [str(PHOENIX_MEMORY)],
            env=service_env(**env),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        return process

    yield _run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
