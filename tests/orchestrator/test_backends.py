"""The orchestrator's gRPC client (grpclib) against real grpc.aio servers on 127.0.0.1:0.

Every way a call can fail maps to the error, HTTP status and metric label that
grpcio's client gave: a status the server sends, a connection refused or
dropped, a server that never answers; and channels open lazily and are reused.
TLS, tracing and the process's imports: test_backend_transport.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from phoenix_common.errors import PhoenixError
from phoenix_common.stubs import tools_pb2_grpc
from phoenix_orchestrator.app import create_app
from phoenix_orchestrator.backends import Backends
from phoenix_orchestrator.errors import (
    BackendFailed,
    BackendForbidden,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)
from phoenix_orchestrator.observability import Metrics
from tests.orchestrator.conftest import (
    FakeClock,
    GrpcPeers,
    Refusing,
    SettingsFactory,
    backend_query,
    backend_run,
    grpc_errors,
    serving,
    unused_port,
)

SESSION = {"twin_id": "twin-sentinel", "session_id": "sess-1"}


@pytest.mark.parametrize(
    ("code", "error", "http_status"),
    [
        (grpc.StatusCode.UNAVAILABLE, BackendUnavailable, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, BackendTimeout, 504),
        (grpc.StatusCode.INVALID_ARGUMENT, BackendRejected, 422),
        (grpc.StatusCode.PERMISSION_DENIED, BackendForbidden, 403),
        (grpc.StatusCode.INTERNAL, BackendFailed, 502),
        (grpc.StatusCode.NOT_FOUND, BackendFailed, 502),
        (grpc.StatusCode.UNIMPLEMENTED, BackendFailed, 502),
    ],
)
async def test_a_status_the_server_sends_maps_to_its_error_and_metric(
    make_settings: SettingsFactory,
    refusing: tuple[Refusing, str],
    code: grpc.StatusCode,
    error: type[PhoenixError],
    http_status: int,
) -> None:
    handler, address = refusing
    handler.code, handler.details = code, f"policy says no ({code.name})"
    metrics = Metrics()
    backends = Backends(make_settings(memory_grpc_addr=address, tools_grpc_addr=address), metrics)
    try:
        for call, service, method in (
            (backend_query, "memory", "QueryMemory"),
            (backend_run, "tools", "RequestExecution"),
        ):
            with pytest.raises(error) as raised:
                await call(backends)
            assert type(raised.value) is error
            assert raised.value.http_status == http_status
            assert grpc_errors(metrics, service, method, code.name) == 1
            if error in (BackendRejected, BackendForbidden, BackendFailed):
                assert f"policy says no ({code.name})" in str(raised.value)
            if error is BackendFailed:
                assert f"({code.name})" in str(raised.value)
    finally:
        await backends.close()


async def test_every_call_carries_its_deadline_to_the_server(
    make_settings: SettingsFactory, refusing: tuple[Refusing, str]
) -> None:
    handler, address = refusing
    handler.code = grpc.StatusCode.INTERNAL
    settings = make_settings(
        memory_grpc_addr=address,
        tools_grpc_addr=address,
        memory_rpc_timeout_seconds=7,
        tools_rpc_timeout_seconds=90,
    )
    backends = Backends(settings, Metrics())
    try:
        for call in (backend_query, backend_run):
            with pytest.raises(BackendFailed):
                await call(backends)
    finally:
        await backends.close()
    memory, tools = handler.time_remaining
    assert memory is not None
    assert 5 < memory <= 7
    assert tools is not None
    assert 85 < tools <= 90


async def test_a_server_that_never_answers_hits_the_deadline(
    make_settings: SettingsFactory, refusing: tuple[Refusing, str]
) -> None:
    """Our deadline passing (grpclib's TimeoutError) is DEADLINE_EXCEEDED, a 504."""
    _, address = refusing  # code None: the handler waits forever
    metrics = Metrics()
    settings = make_settings(tools_grpc_addr=address, tools_rpc_timeout_seconds=0.3)
    backends = Backends(settings, metrics)
    try:
        with pytest.raises(BackendTimeout, match=r"did not answer within 0\.3s"):
            await backend_run(backends)
    finally:
        await backends.close()
    assert grpc_errors(metrics, "tools", "RequestExecution", "DEADLINE_EXCEEDED") == 1


async def test_a_peer_that_accepts_but_never_speaks_http2_hits_the_deadline(
    make_settings: SettingsFactory,
) -> None:
    """The deadline covers connecting too: a listener that never answers cannot hang a call."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    metrics = Metrics()
    settings = make_settings(
        memory_grpc_addr=f"http://127.0.0.1:{port}", memory_rpc_timeout_seconds=0.3
    )
    backends = Backends(settings, metrics)
    try:
        with pytest.raises(BackendTimeout):
            await backend_query(backends)
    finally:
        await backends.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert grpc_errors(metrics, "memory", "QueryMemory", "DEADLINE_EXCEEDED") == 1


async def test_a_refused_connection_is_unavailable(make_settings: SettingsFactory) -> None:
    metrics = Metrics()
    address = f"http://127.0.0.1:{unused_port()}"
    backends = Backends(make_settings(memory_grpc_addr=address), metrics)
    try:
        with pytest.raises(BackendUnavailable, match=f"memory service at {address} is unavail"):
            await backend_query(backends)
        with pytest.raises(BackendUnavailable):  # and again: nothing cached a broken channel
            await backend_query(backends)
    finally:
        await backends.close()
    assert grpc_errors(metrics, "memory", "QueryMemory", "UNAVAILABLE") == 2


class DroppingPeer:
    """An HTTP/2 server (h2) that drops the connection once a whole call has arrived.

    Deterministic where a grpc server is not: the request is known to have been
    received, so whatever the service would have done with it may have happened.
    """

    def __init__(self) -> None:
        self.received = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        connection.initiate_connection()
        writer.write(connection.data_to_send())
        while data := await reader.read(65536):
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    self.received.set()
                    writer.transport.abort()
                    return
            writer.write(connection.data_to_send())


@pytest.fixture
async def dropping() -> AsyncIterator[tuple[DroppingPeer, str]]:
    peer = DroppingPeer()
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    yield peer, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_a_tool_run_whose_connection_was_lost_after_sending_has_an_unknown_outcome(
    make_settings: SettingsFactory, dropping: tuple[DroppingPeer, str]
) -> None:
    """Not "unavailable, nothing ran" (503, approvable again): the command may have run."""
    peer, address = dropping
    metrics = Metrics()
    backends = Backends(make_settings(tools_grpc_addr=address), metrics)
    try:
        with pytest.raises(BackendFailed, match="lost after the request was sent") as raised:
            await backend_run(backends)
    finally:
        await backends.close()
    assert peer.received.is_set()
    assert raised.value.http_status == 502
    assert grpc_errors(metrics, "tools", "RequestExecution", "UNAVAILABLE") == 1


async def test_a_memory_query_whose_connection_was_lost_is_unavailable(
    make_settings: SettingsFactory, dropping: tuple[DroppingPeer, str]
) -> None:
    """A query has no side effects: approving it again is safe, so it is a 503."""
    peer, address = dropping
    metrics = Metrics()
    backends = Backends(make_settings(memory_grpc_addr=address), metrics)
    try:
        with pytest.raises(BackendUnavailable) as raised:
            await backend_query(backends)
    finally:
        await backends.close()
    assert peer.received.is_set()
    assert raised.value.http_status == 503
    assert grpc_errors(metrics, "memory", "QueryMemory", "UNAVAILABLE") == 1


async def test_a_tool_run_in_flight_when_tools_stops_gracefully_has_an_unknown_outcome(
    make_settings: SettingsFactory, peers: GrpcPeers
) -> None:
    """grpclib ends the call at the server's GOAWAY (grpcio let it finish): a 502, not a 503.

    The command is running at that moment, so approving it again could run it twice.
    """
    server = grpc.aio.server()
    tools_pb2_grpc.add_ToolExecutorServiceServicer_to_server(peers.tools, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    peers.tools.hold = asyncio.Event()
    backends = Backends(make_settings(tools_grpc_addr=f"http://127.0.0.1:{port}"), Metrics())
    call = asyncio.create_task(backend_run(backends))
    await asyncio.wait_for(peers.tools.holding.wait(), 30)
    stopping = asyncio.create_task(server.stop(30))
    try:
        with pytest.raises(BackendFailed, match="the outcome is unknown"):
            await call
    finally:
        peers.tools.hold.set()
        await stopping
        await backends.close()


async def test_a_tool_run_whose_connection_was_lost_is_failed_and_never_run_again(
    make_settings: SettingsFactory, clock: FakeClock, dropping: tuple[DroppingPeer, str]
) -> None:
    _, address = dropping
    async with serving(create_app(make_settings(tools_grpc_addr=address), clock=clock)) as client:
        await client.post("/chat", json={"message": "write a file", **SESSION})
        ran = await client.post(
            "/chat", json={"message": "[TOOL_EXECUTED] command_exec - CONFIRMED", **SESSION}
        )
        assert ran.status_code == 502
        assert ran.json()["error"]["code"] == "dependency_failed"
        assert "the outcome is unknown" in ran.json()["response"]
        listed = await client.get("/v1/approvals", params={"session_id": SESSION["session_id"]})
        assert listed.json()["pending"] == []
        again = await client.post(
            "/chat", json={"message": "[TOOL_EXECUTED] command_exec - CONFIRMED", **SESSION}
        )
        assert again.json()["status"] == "error"
        assert again.json()["error"]["code"] == "approval_not_found"


async def test_channels_open_on_first_use_and_are_reused(
    make_settings: SettingsFactory, peers: GrpcPeers
) -> None:
    accepted: list[int] = []

    async def count(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    listener = await asyncio.start_server(count, "127.0.0.1", 0)
    idle = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    backends = Backends(
        make_settings(memory_grpc_addr=peers.memory_addr, tools_grpc_addr=idle), Metrics()
    )
    try:
        first = await backend_query(backends)
        second = await backend_query(backends)
        assert [r.id for r in first.results] == ["mem-1", "mem-2"]
        assert second == first
        assert len(peers.memory.callers) == 2
        assert peers.memory.callers[0] == peers.memory.callers[1]  # one connection for both
        await asyncio.sleep(0.05)
        assert accepted == []  # tools was never used, so never connected
    finally:
        await backends.close()
        listener.close()
        await listener.wait_closed()
