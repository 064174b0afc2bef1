"""Fixtures for the tools tests: a real server on 127.0.0.1:0 with real bwrap, a memory fake.

The memory service is replaced by a tiny real gRPC server (vector_query is a
client of it); the sandbox is never mocked.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc, tools_pb2, tools_pb2_grpc
from phoenix_tools import server
from phoenix_tools.settings import ToolsSettings

TEST_POLICY = """
# The original's three twins, plus two lab twins that may run interpreters, so
# the adversarial tests exercise the sandbox rather than the policy.
restricted: [rm, delete, format, shutdown, reboot]
twins:
  twin-aegis: {allowed: ["*"], programs: ["*"]}
  twin-sentinel:
    allowed: [command_exec, file_write, vector_query]
    programs: ["*"]
  twin-trace: {allowed: [vector_query]}
  twin-lab:
    allowed: ["*"]
    programs: ["*", sh, bash, python3, unshare, su, sudo]
  twin-other:
    allowed: ["*"]
    programs: ["*", sh, python3]
"""


@dataclass
class FakeMemory(memory_pb2_grpc.MemoryServiceServicer):
    """A real MemoryService answering from a fixed list; remembers the requests."""

    requests: list[memory_pb2.QueryMemoryRequest] = field(default_factory=list)

    async def QueryMemory(
        self, request: memory_pb2.QueryMemoryRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.QueryMemoryResponse:
        self.requests.append(request)
        results = [
            memory_pb2.MemoryResult(
                id=f"m{i}",
                content=f"{request.query} #{i}",
                similarity=0.9 - i / 10,
                memory_type="Semantic",
                risk_level="Low",
                agent_id=request.twin_id,
            )
            for i in range(min(request.top_k or 10, 3))
        ]
        return memory_pb2.QueryMemoryResponse(
            results=results, total_count=len(results), namespace=request.namespace
        )


@dataclass
class Running:
    """A started tools server with a client stub on a real channel."""

    tools: server.ToolsServer
    channel: grpc.aio.Channel
    stub: tools_pb2_grpc.ToolExecutorServiceStub
    settings: ToolsSettings

    async def run(
        self, twin: str, command: str, *args: str, **extra: Any
    ) -> tools_pb2.ExecutionResponse:
        request = tools_pb2.ExecutionRequest(twin_id=twin, command=command, args=args, **extra)
        response: tools_pb2.ExecutionResponse = await self.stub.RequestExecution(
            request, timeout=30
        )
        return response

    async def sh(self, twin: str, script: str) -> tools_pb2.ExecutionResponse:
        """Run a script with /bin/sh as a program (the twin must allow sh)."""
        return await self.run(twin, "sh", "-c", script)

    async def py(self, twin: str, code: str) -> tools_pb2.ExecutionResponse:
        return await self.run(twin, "python3", "-c", code)


@pytest.fixture(scope="session")
def sandbox_root() -> Iterator[Path]:
    # Under /tmp with 0755, so the unprivileged sandbox uid can traverse into it.
    root = Path(tempfile.mkdtemp(prefix="phx-tools-test-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def policy_file(sandbox_root: Path) -> Path:
    path = sandbox_root / "policy.yaml"
    path.write_text(TEST_POLICY)
    return path


def make_settings(sandbox_dir: Path, **overrides: Any) -> ToolsSettings:
    """Test settings: small limits and a short timeout so attacks end quickly."""
    values: dict[str, Any] = {
        "SANDBOX_DIR": str(sandbox_dir),
        "TOOLS_GRPC_HOST": "127.0.0.1",
        "TOOLS_GRPC_PORT": 0,
        "TOOLS_METRICS_PORT": 0,
        "TOOLS_EXEC_TIMEOUT_MS": 4000,
        "TOOLS_RLIMIT_CPU_SECONDS": 2,
        "TOOLS_RLIMIT_NPROC": 64,
        "TOOLS_RLIMIT_AS_MB": 512,
        "TOOLS_RLIMIT_FSIZE_MB": 8,
        "TOOLS_TMPFS_MB": 12,
        "SAFE_MODE": False,
        "TOOLS_USE_BWRAP": True,
        "TOOLS_ALLOW_UNSANDBOXED": False,
        "ALLOW_RESTRICTED_COMMANDS": False,
    }
    values.update(overrides)
    return ToolsSettings(**values)


@asynccontextmanager
async def running_server(
    settings: ToolsSettings, tracer_provider: TracerProvider | None = None
) -> AsyncIterator[Running]:
    tools = await server.start(settings, tracer_provider=tracer_provider)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{tools.port}")
    stub = tools_pb2_grpc.ToolExecutorServiceStub(channel)  # type: ignore[no-untyped-call]
    try:
        yield Running(tools, channel, stub, settings)
    finally:
        await channel.close()
        await tools.stop(grace=0.5)


@pytest_asyncio.fixture(scope="session")
async def memory_fake() -> AsyncIterator[tuple[FakeMemory, int]]:
    fake = FakeMemory()
    srv = grpc.aio.server()
    memory_pb2_grpc.add_MemoryServiceServicer_to_server(fake, srv)  # type: ignore[no-untyped-call]
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield fake, port
    await srv.stop(0)


@pytest_asyncio.fixture(scope="session")
async def tools(
    sandbox_root: Path, policy_file: Path, memory_fake: tuple[FakeMemory, int]
) -> AsyncIterator[Running]:
    """The bwrap-mode server every integration test shares."""
    settings = make_settings(
        sandbox_root / "main",
        TOOLS_POLICY_FILE=str(policy_file),
        MEMORY_GRPC_ADDR=f"http://127.0.0.1:{memory_fake[1]}",
    )
    async with running_server(settings) as running:
        assert running.tools.executor.runtime.mode == "bwrap", (
            running.tools.executor.runtime.mode_reason
        )
        yield running


@pytest_asyncio.fixture(scope="session")
async def fallback_tools(sandbox_root: Path, policy_file: Path) -> AsyncIterator[Running]:
    """A server in the cwd-only fallback mode (bwrap off, fallback explicitly allowed)."""
    settings = make_settings(
        sandbox_root / "fallback",
        TOOLS_POLICY_FILE=str(policy_file),
        TOOLS_USE_BWRAP=False,
        TOOLS_ALLOW_UNSANDBOXED=True,
    )
    async with running_server(settings) as running:
        assert running.tools.executor.runtime.mode == "cwd"
        yield running
