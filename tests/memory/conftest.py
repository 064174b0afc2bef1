"""Fixtures for the memory service: one real embedder per session, real Qdrant engines (the
Qdrant server binary and Qdrant Edge), real gRPC servers on 127.0.0.1:0, and grpcurl built
once into a version-keyed cache.

The server-backed tests share one Qdrant server per session; each test serves a twin of
its own (``twin``), so tests never see each other's memories, in either tenancy mode.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import grpc
import pytest

from phoenix_common.naming import Tenancy, TwinRef
from phoenix_common.stubs import memory_pb2_grpc
from phoenix_memory.archive import Archive
from phoenix_memory.embed.base import Embedder
from phoenix_memory.embed.batching import BatchingEmbedder
from phoenix_memory.embed.local import LocalEmbedder
from phoenix_memory.server import MemoryServer, start
from phoenix_memory.store.base import MemoryStore
from phoenix_memory.store.edge import EdgeStore
from phoenix_memory.store.qdrant_server import QdrantServerStore
from scripts.cache import cache_root

from .qdrant_server import QdrantEndpoint, qdrant_endpoint

REPO = Path(__file__).resolve().parents[2]
GRPCURL_VERSION = "v1.9.3"
TWIN = TwinRef("team-a", "sentinel")

Engine = Literal["edge", "qdrant"]
Backend = tuple[Engine, Tenancy]
# Every server-level test runs on these: the embedded engine, and the real Qdrant server
# in both tenancy modes.
BACKENDS: tuple[Backend, ...] = (
    ("edge", "collection"),
    ("qdrant", "collection"),
    ("qdrant", "payload"),
)


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


@pytest.fixture(scope="session")
def qdrant() -> Iterator[QdrantEndpoint]:
    """The real Qdrant server of this session (see tests/memory/qdrant_server.py)."""
    try:
        with qdrant_endpoint() as endpoint:
            yield endpoint
    except RuntimeError as err:
        pytest.fail(str(err))


def open_store(engine: Engine, path: Path, qdrant: QdrantEndpoint | None) -> MemoryStore:
    if engine == "edge":
        return EdgeStore(path)
    assert qdrant is not None
    return QdrantServerStore.connect(qdrant.grpc_url, api_key=None, timeout_s=10)


def unique_twin(prefix: str = "t") -> TwinRef:
    return TwinRef("team-a", f"{prefix}-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS, ids=["-".join(b) for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    kind: Backend = request.param
    return kind


@pytest.fixture
def twin() -> TwinRef:
    """A twin of this test's own, so a shared Qdrant server never mixes tests."""
    return unique_twin()


@pytest.fixture
def server_qdrant(backend: Backend, request: pytest.FixtureRequest) -> QdrantEndpoint | None:
    """The session's Qdrant server when the backend needs it (started on first use only)."""
    if backend[0] != "qdrant":
        return None
    endpoint: QdrantEndpoint = request.getfixturevalue("qdrant")
    return endpoint


StartServer = Callable[..., Awaitable[MemoryServer]]


@pytest.fixture
async def start_server(embedder: SessionEmbedder, twin: TwinRef) -> AsyncIterator[StartServer]:
    """Start a real server around a store; every server started is stopped at teardown."""
    started: list[MemoryServer] = []

    async def _start(
        store: MemoryStore, heartbeat_s: float | None = None, tenancy: Tenancy = "collection"
    ) -> MemoryServer:
        archive = Archive(twin, store, embedder, tenancy=tenancy)
        server = await start(archive, host="127.0.0.1", heartbeat_interval_s=heartbeat_s)
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.stop(0)


@pytest.fixture
def storage(backend: Backend, tmp_path: Path) -> Path:
    return tmp_path / backend[0]


@pytest.fixture
async def server(
    backend: Backend,
    storage: Path,
    server_qdrant: QdrantEndpoint | None,
    start_server: StartServer,
) -> MemoryServer:
    return await start_server(open_store(backend[0], storage, server_qdrant), tenancy=backend[1])


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
    """grpcurl, built with `go install` once per version into the cache root's ``tools/``."""
    cache = cache_root() / "tools" / f"grpcurl-{GRPCURL_VERSION}"
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
        if not key.startswith(("MEMORY_", "QDRANT_", "EMBEDDING_", "TWIN_", "GLIBC_"))
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
