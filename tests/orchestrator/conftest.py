"""Fixtures for the orchestrator: settings, a running app, real gRPC peers, a fake LLM.

The gRPC peers are tiny grpc.aio servicers of the real memory and tools protos
on 127.0.0.1:0, so the orchestrator speaks the real protocol; the LLM is a
chat-completions HTTP server on 127.0.0.1:0 whose replies a test scripts.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc, tools_pb2, tools_pb2_grpc
from phoenix_orchestrator.app import create_app
from phoenix_orchestrator.settings import OrchestratorSettings

if TYPE_CHECKING:
    from phoenix_orchestrator.backends import Backends
    from phoenix_orchestrator.observability import Metrics

# -- clock ---------------------------------------------------------------------


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- gRPC peers ----------------------------------------------------------------


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    """Answers QueryMemory from a fixed list and records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[memory_pb2.QueryMemoryRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.callers: list[str] = []  # the client's address and port: one per connection
        self.results = [
            memory_pb2.MemoryResult(id="mem-1", content="the vault code is 1234", similarity=0.9),
            memory_pb2.MemoryResult(id="mem-2", content="the vault is in the cellar"),
        ]

    async def QueryMemory(
        self, request: memory_pb2.QueryMemoryRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.QueryMemoryResponse:
        self.requests.append(request)
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        self.callers.append(context.peer())
        return memory_pb2.QueryMemoryResponse(
            results=self.results, total_count=len(self.results), namespace=request.namespace
        )


class ToolsServicer(tools_pb2_grpc.ToolExecutorServiceServicer):
    """Answers RequestExecution with ``reply`` (or aborts with ``abort``) and records requests."""

    def __init__(self) -> None:
        self.requests: list[tools_pb2.ExecutionRequest] = []
        self.abort: tuple[grpc.StatusCode, str] | None = None
        self.hold: asyncio.Event | None = None  # when set, a run waits for it (a run in flight)
        self.holding = asyncio.Event()
        self.reply = tools_pb2.ExecutionResponse(
            success=True,
            exit_code=0,
            stdout_logs=["hello world"],
            message="Execution completed (elapsed_ms=3)",
            execution_id="exec-1",
        )

    async def RequestExecution(
        self, request: tools_pb2.ExecutionRequest, context: grpc.aio.ServicerContext
    ) -> tools_pb2.ExecutionResponse:
        self.requests.append(request)
        if self.abort is not None:
            await context.abort(*self.abort)
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        return self.reply


@dataclass
class GrpcPeers:
    memory: MemoryServicer
    tools: ToolsServicer
    memory_addr: str
    tools_addr: str


@pytest.fixture
async def peers() -> AsyncIterator[GrpcPeers]:
    memory, tools = MemoryServicer(), ToolsServicer()
    memory_server, tools_server = grpc.aio.server(), grpc.aio.server()
    memory_pb2_grpc.add_MemoryServiceServicer_to_server(memory, memory_server)  # type: ignore[no-untyped-call]
    tools_pb2_grpc.add_ToolExecutorServiceServicer_to_server(tools, tools_server)  # type: ignore[no-untyped-call]
    memory_port = memory_server.add_insecure_port("127.0.0.1:0")
    tools_port = tools_server.add_insecure_port("127.0.0.1:0")
    await memory_server.start()
    await tools_server.start()
    yield GrpcPeers(
        memory, tools, f"http://127.0.0.1:{memory_port}", f"http://127.0.0.1:{tools_port}"
    )
    await memory_server.stop(None)
    await tools_server.stop(None)


# -- the gRPC client (phoenix_orchestrator.backends) on its own ---------------------


def grpc_errors(metrics: Metrics, service: str, method: str, code: str) -> float:
    """The orchestrator's count of failed calls with these labels."""
    value = metrics.registry.get_sample_value(
        "phoenix_orchestrator_grpc_errors_total",
        {"service": service, "method": method, "code": code},
    )
    return value or 0.0


async def backend_query(backends: Backends) -> memory_pb2.QueryMemoryResponse:
    """One QueryMemory through ``backends``."""
    return await backends.query_memory(query="vault", namespace="default", twin_id="t", top_k=3)


async def backend_run(backends: Backends) -> tools_pb2.ExecutionResponse:
    """One RequestExecution through ``backends``."""
    return await backends.run_tool(
        tool_name="command_exec",
        args=["true"],
        twin_id="t",
        job_id="job-1",
        namespace="default",
        metadata={},
    )


class Refusing(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Any method: abort with ``code`` and ``details``; with no code, wait for ``release``."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.release = asyncio.Event()
        self.time_remaining: list[float | None] = []

    def service(self, _: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.time_remaining.append(context.time_remaining())
            if self.code is not None:
                await context.abort(self.code, self.details)
            await self.release.wait()
            return b""

        return grpc.unary_unary_rpc_method_handler(handle)


@pytest.fixture
async def refusing() -> AsyncIterator[tuple[Refusing, str]]:
    handler = Refusing()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield handler, f"http://127.0.0.1:{port}"
    handler.release.set()
    await server.stop(None)


def unused_port() -> int:
    """A local port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- fake chat-completions server ----------------------------------------------


@dataclass
class Reply:
    """One scripted answer: an HTTP status and JSON body, optionally after a delay.

    With ``pieces``, a request asking for ``stream: true`` gets server-sent events
    instead: one chunk per piece, ``piece_delay`` apart, then a usage chunk (when
    ``usage`` is set) and ``[DONE]``.
    """

    status: int = 200
    body: Any = None
    delay: float = 0.0
    pieces: list[str] | None = None
    piece_delay: float = 0.0
    usage: dict[str, int] | None = None
    hold_after: int | None = None  # pieces sent before waiting for FakeLLM.release


def completion(content: str, usage: dict[str, int] | None = None) -> Reply:
    body: dict[str, Any] = {
        "model": "test/model-2026",
        "choices": [{"message": {"role": "assistant", "content": content}}],
    }
    if usage is not None:
        body["usage"] = usage
    return Reply(body=body, usage=usage)


def streamed(
    content: str, *, pieces: int = 8, delay: float = 0.0, usage: dict[str, int] | None = None
) -> Reply:
    """``content`` streamed in about ``pieces`` pieces (also answers a non-streaming request)."""
    size = max(1, -(-len(content) // pieces))
    reply = completion(content, usage)
    reply.pieces = [content[i : i + size] for i in range(0, len(content), size)]
    reply.piece_delay = delay
    return reply


def action(action_type: str, **details: Any) -> str:
    """An LLMAction as the model would write it."""
    return json.dumps({"action_type": action_type, "details": details})


@dataclass
class FakeLLM:
    url: str
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=lambda: Reply(500, {"error": {"message": "empty"}}))
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    pieces_sent: int = 0
    aborted: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def next_reply(self) -> Reply:
        return self.script.pop(0) if self.script else self.default


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            llm.requests.append(json.loads(self.rfile.read(length)))
            llm.headers.append(dict(self.headers))
            reply = llm.next_reply()
            if reply.delay:
                stop.wait(reply.delay)
            if reply.pieces is not None and llm.requests[-1].get("stream"):
                self._stream(reply)
                return
            payload = (
                reply.body.encode()
                if isinstance(reply.body, str)
                else json.dumps(reply.body).encode()
            )
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (a timeout test)

        def _stream(self, reply: Reply) -> None:
            assert reply.pieces is not None
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for sent, piece in enumerate(reply.pieces, start=1):
                    chunk = {"model": "test/model-2026", "choices": [{"delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    llm.pieces_sent += 1
                    if reply.hold_after == sent:  # pieces of this reply, not of all of them
                        llm.release.wait(30)  # a test reads what streamed so far meanwhile
                    if reply.piece_delay:
                        stop.wait(reply.piece_delay)
                end = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                if reply.usage is not None:
                    usage = {"model": "test/model-2026", "choices": [], "usage": reply.usage}
                    self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                llm.finished.set()
            except OSError:
                llm.aborted.set()  # the client closed the connection mid-stream

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    llm = FakeLLM(url=f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield llm
    stop.set()
    server.shutdown()
    server.server_close()


# -- settings and app ----------------------------------------------------------


SettingsFactory = Callable[..., OrchestratorSettings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    def make(**overrides: Any) -> OrchestratorSettings:
        values: dict[str, Any] = {
            "state_dir": tmp_path / "state",
            "memory_grpc_addr": f"http://127.0.0.1:{unused_port()}",
            "tools_grpc_addr": f"http://127.0.0.1:{unused_port()}",
            "log_format": "text",
        }
        values.update(overrides)
        return OrchestratorSettings(_env_file=None, **values)

    return make


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an httpx client."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://orchestrator"
        ) as client,
    ):
        yield client


@pytest.fixture
async def client(
    make_settings: SettingsFactory, peers: GrpcPeers, clock: FakeClock
) -> AsyncIterator[httpx.AsyncClient]:
    """An orchestrator with the deterministic planner, wired to the in-test gRPC peers."""
    settings = make_settings(memory_grpc_addr=peers.memory_addr, tools_grpc_addr=peers.tools_addr)
    async with serving(create_app(settings, clock=clock)) as http:
        yield http


Starter = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def start(make_settings: SettingsFactory, peers: GrpcPeers, clock: FakeClock) -> Starter:
    """``async with start(**settings) as client``: an orchestrator wired to the in-test peers."""

    def run(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        values: dict[str, Any] = {
            "memory_grpc_addr": peers.memory_addr,
            "tools_grpc_addr": peers.tools_addr,
        }
        values.update(overrides)
        return serving(create_app(make_settings(**values), clock=clock))

    return run


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
