"""The orchestrator's gRPC client (grpclib) against real grpc.aio servers on 127.0.0.1:0.

Every way a call can fail maps to the error, HTTP status and metric label that
grpcio's client gave: a status the server sends, a connection refused or
dropped, a server that never answers, a certificate the system does not trust.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from phoenix_common.errors import PhoenixError
from phoenix_common.stubs import memory_pb2_grpc, tools_pb2_grpc
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
    MemoryServicer,
    SettingsFactory,
    serving,
    unused_port,
)

REPO = Path(__file__).resolve().parents[2]
SESSION = {"twin_id": "twin-sentinel", "session_id": "sess-1"}


def grpc_errors(metrics: Metrics, service: str, method: str, code: str) -> float:
    value = metrics.registry.get_sample_value(
        "phoenix_orchestrator_grpc_errors_total",
        {"service": service, "method": method, "code": code},
    )
    return value or 0.0


async def query(backends: Backends) -> object:
    return await backends.query_memory(query="vault", namespace="default", twin_id="t", top_k=3)


async def run(backends: Backends) -> object:
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
            (query, "memory", "QueryMemory"),
            (run, "tools", "RequestExecution"),
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
        for call in (query, run):
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
            await run(backends)
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
            await query(backends)
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
            await query(backends)
        with pytest.raises(BackendUnavailable):  # and again: nothing cached a broken channel
            await query(backends)
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
            await run(backends)
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
            await query(backends)
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
    call = asyncio.create_task(run(backends))
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
        first = await query(backends)
        second = await query(backends)
        assert [r.id for r in first.results] == ["mem-1", "mem-2"]  # type: ignore[attr-defined]
        assert second == first
        assert len(peers.memory.callers) == 2
        assert peers.memory.callers[0] == peers.memory.callers[1]  # one connection for both
        await asyncio.sleep(0.05)
        assert accepted == []  # tools was never used, so never connected
    finally:
        await backends.close()
        listener.close()
        await listener.wait_closed()


def _certificate(directory: Path) -> tuple[Path, bytes, bytes]:
    """A CA file and a server key and certificate for 127.0.0.1 that it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phoenix test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "memory")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ca_file, key_pem, cert.public_bytes(serialization.Encoding.PEM)


async def test_https_addresses_use_tls_verified_by_the_system_trust_store(
    make_settings: SettingsFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trusted through SSL_CERT_FILE (OpenSSL's system store): answers; otherwise UNAVAILABLE."""
    ca_file, key_pem, cert_pem = _certificate(tmp_path)
    server = grpc.aio.server()
    memory_pb2_grpc.add_MemoryServiceServicer_to_server(MemoryServicer(), server)  # type: ignore[no-untyped-call]
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    await server.start()
    settings = make_settings(memory_grpc_addr=f"https://127.0.0.1:{port}")
    try:
        metrics = Metrics()
        untrusted = Backends(settings, metrics)
        try:
            with pytest.raises(BackendUnavailable):
                await query(untrusted)
        finally:
            await untrusted.close()
        assert grpc_errors(metrics, "memory", "QueryMemory", "UNAVAILABLE") == 1

        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        trusted = Backends(settings, Metrics())
        try:
            found = await query(trusted)
        finally:
            await trusted.close()
        assert [r.id for r in found.results] == ["mem-1", "mem-2"]  # type: ignore[attr-defined]
    finally:
        await server.stop(None)


async def test_a_traced_call_is_a_client_span_whose_context_the_server_receives(
    make_settings: SettingsFactory, peers: GrpcPeers, refusing: tuple[Refusing, str]
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler, refusing_address = refusing
    handler.code, handler.details = grpc.StatusCode.PERMISSION_DENIED, "not this twin"
    settings = make_settings(memory_grpc_addr=peers.memory_addr, tools_grpc_addr=refusing_address)
    backends = Backends(settings, Metrics(), tracer_provider=provider)
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("request") as request:
            await query(backends)
            with pytest.raises(BackendForbidden):
                await run(backends)
    finally:
        await backends.close()
    called, refused, parent = exporter.get_finished_spans()
    assert parent.context is not None
    assert parent.context.span_id == request.get_span_context().span_id
    assert called.name == "memory.MemoryService/QueryMemory"
    assert called.kind is trace.SpanKind.CLIENT
    assert called.parent is not None
    assert called.parent.span_id == parent.context.span_id
    port = int(peers.memory_addr.rsplit(":", 1)[1])
    assert dict(called.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "memory.MemoryService",
        "rpc.method": "QueryMemory",
        "server.address": "127.0.0.1",
        "server.port": port,
        "rpc.grpc.status_code": 0,
    }
    assert called.status.status_code is trace.StatusCode.UNSET
    # The server got this span as its parent, in the caller's trace.
    assert called.context is not None
    _, trace_id, span_id, _ = peers.memory.metadata[0]["traceparent"].split("-")
    assert trace_id == f"{parent.context.trace_id:032x}"
    assert span_id == f"{called.context.span_id:016x}"

    assert refused.name == "tools.ToolExecutorService/RequestExecution"
    assert refused.attributes is not None
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert refused.status.status_code is trace.StatusCode.ERROR
    assert refused.status.description == "PERMISSION_DENIED: not this twin"


async def test_an_untraced_call_makes_no_span_and_sends_no_trace_context(
    make_settings: SettingsFactory, peers: GrpcPeers
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = make_settings(memory_grpc_addr=peers.memory_addr)
    backends = Backends(settings, Metrics(), tracer_provider=provider)
    try:
        await query(backends)
    finally:
        await backends.close()
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in peers.memory.metadata[0]


APPROVED_RUNS = """
import asyncio, json, sys

import httpx

from phoenix_orchestrator.app import create_app
from phoenix_orchestrator.settings import OrchestratorSettings


async def approve_both(state_dir: str, memory: str, tools: str) -> list[dict]:
    settings = OrchestratorSettings(
        _env_file=None, state_dir=state_dir, memory_grpc_addr=memory, tools_grpc_addr=tools
    )
    app = create_app(settings)
    session = {"twin_id": "twin-sentinel", "session_id": "sess-1"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orchestrator"
    ) as client:
        async def chat(message: str) -> dict:
            return (await client.post("/chat", json={"message": message, **session})).json()

        asked = await chat("search the vault")
        shown = await chat(f"[MEMORY_SHOWN] {asked['request_id']}")
        await chat("write a file")
        ran = await chat("[TOOL_EXECUTED] command_exec - CONFIRMED")
    return [shown, ran]


async def main() -> None:
    state_dir, memory, tools, down = sys.argv[1:]
    shown, ran = await approve_both(state_dir + "/up", memory, tools)
    refused = await approve_both(state_dir + "/down", down, down)  # the error paths too
    loaded = [name for name in ("grpc", "grpclib") if name in sys.modules]
    print(json.dumps({"shown": shown, "ran": ran, "refused": refused, "loaded": loaded}))


asyncio.run(main())
"""


async def test_approved_memory_queries_and_tool_runs_never_import_grpcio(
    peers: GrpcPeers, tmp_path: Path
) -> None:
    """grpcio costs ~17 MiB of RSS: the untraced orchestrator talks gRPC with grpclib only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        APPROVED_RUNS,
        str(tmp_path / "state"),
        peers.memory_addr,
        peers.tools_addr,
        f"http://127.0.0.1:{unused_port()}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    result = json.loads(out.decode().splitlines()[-1])
    assert result["shown"]["status"] == "completed", result["shown"]
    assert result["shown"]["source_memories"] == ["mem-1", "mem-2"]
    assert result["ran"]["status"] == "completed", result["ran"]
    assert "hello world" in result["ran"]["response"]
    assert [r.query for r in peers.memory.requests] == ["search the vault"]
    assert [r.command for r in peers.tools.requests] == ["command_exec"]
    assert [r["error"]["code"] for r in result["refused"]] == ["dependency_unavailable"] * 2
    assert result["loaded"] == ["grpclib"]
