"""The Qdrant server backend when Qdrant is not there: UNAVAILABLE, bounded retries, exit 1."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import grpc
import pytest

from phoenix_common.errors import DependencyUnavailable
from phoenix_common.stubs import memory_pb2
from phoenix_memory.server import build_store, wait_for_store
from phoenix_memory.settings import MemorySettings
from phoenix_memory.store.qdrant_server import QdrantServerStore

from .conftest import PHOENIX_MEMORY, StartServer, free_port, memory_stub, service_env


@pytest.fixture
def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


async def test_rpcs_are_unavailable_when_qdrant_is_unreachable(
    start_server: StartServer, closed_port_url: str
) -> None:
    store = QdrantServerStore.connect(closed_port_url, api_key=None, timeout_s=2)
    server = await start_server(store)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = memory_stub(channel)
        for call in (
            stub.CommitMemory(memory_pb2.CommitMemoryRequest(content="x", namespace="ops")),
            stub.QueryMemory(memory_pb2.QueryMemoryRequest(query="x", namespace="ops")),
            stub.ListMemories(memory_pb2.ListMemoriesRequest(namespace="ops")),
            stub.DeleteMemory(
                memory_pb2.DeleteMemoryRequest(
                    memory_id="6f9619ff-8b86-d011-b42d-00c04fc964ff", namespace="ops"
                )
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "Qdrant is unavailable" in (err.value.details() or "")
        health = await stub.HealthCheck(memory_pb2.HealthCheckRequest())
        assert health.status == "unhealthy"


async def test_wait_for_store_gives_up_after_the_configured_attempts(
    closed_port_url: str,
) -> None:
    store = QdrantServerStore.connect(closed_port_url, api_key=None, timeout_s=1)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable, match=r"did not answer after 3 attempts 0\.2s apart"):
        await wait_for_store(store, attempts=3, delay_s=0.2)
    assert time.monotonic() - started >= 0.4
    await store.close()


def test_settings_build_a_server_store_naming_the_endpoint() -> None:
    remote = build_store(MemorySettings.load(backend="qdrant", qdrant_url="http://db:6334"))
    assert remote.description == "Qdrant at db:6334"


def test_service_exits_nonzero_when_qdrant_never_answers(
    tmp_path: Path, closed_port_url: str
) -> None:
    done = subprocess.run(
        [str(PHOENIX_MEMORY)],
        check=False,
        env=service_env(
            QDRANT_URL=closed_port_url,
            QDRANT_CONNECT_ATTEMPTS="2",
            QDRANT_CONNECT_RETRY_DELAY_MS="100",
            MEMORY_GRPC_PORT=str(free_port()),
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "storage not available, giving up" in done.stderr
    assert "did not answer after 2 attempts" in done.stderr
