"""The orchestrator's gRPC client: TLS, trace context, and no grpcio in the process.

Against real grpc.aio servers on 127.0.0.1:0: a TLS server whose CA is trusted
only through the system trust store's ``SSL_CERT_FILE``, the span and trace
context a traced call sends, and an orchestrator in a subprocess whose approved
memory queries and tool runs (answered and refused) leave grpc out of
``sys.modules``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from phoenix_common.stubs import memory_pb2_grpc
from phoenix_orchestrator.backends import Backends
from phoenix_orchestrator.errors import BackendForbidden, BackendUnavailable
from phoenix_orchestrator.observability import Metrics
from tests.orchestrator.conftest import (
    GrpcPeers,
    MemoryServicer,
    Refusing,
    SettingsFactory,
    backend_query,
    backend_run,
    grpc_errors,
    unused_port,
)

REPO = Path(__file__).resolve().parents[2]


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
                await backend_query(untrusted)
        finally:
            await untrusted.close()
        assert grpc_errors(metrics, "memory", "QueryMemory", "UNAVAILABLE") == 1

        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        trusted = Backends(settings, Metrics())
        try:
            found = await backend_query(trusted)
        finally:
            await trusted.close()
        assert [r.id for r in found.results] == ["mem-1", "mem-2"]
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
            await backend_query(backends)
            with pytest.raises(BackendForbidden):
                await backend_run(backends)
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
        await backend_query(backends)
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
