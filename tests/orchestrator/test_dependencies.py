"""Memory and tools down, slow or refusing: clear replies and status codes, never a crash."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from phoenix_orchestrator.agent import loop
from phoenix_orchestrator.app import create_app
from tests.orchestrator.conftest import FakeClock, GrpcPeers, SettingsFactory, serving

SESSION = {"twin_id": "twin-sentinel", "session_id": "sess-1"}


async def chat(client: httpx.AsyncClient, message: str) -> httpx.Response:
    return await client.post("/chat", json={"message": message, **SESSION})


async def test_orchestrator_starts_and_plans_with_memory_and_tools_down(
    make_settings: SettingsFactory, clock: FakeClock
) -> None:
    """Defect 15: no eager connect, so startup does not depend on memory or tools."""
    async with serving(create_app(make_settings(), clock=clock)) as client:
        assert (await client.get("/health")).status_code == 200
        asked = await chat(client, "search the vault")
        assert asked.status_code == 200
        assert asked.json()["issued_command"]["command"] == "show_memory_page"


async def test_memory_down_is_a_503_and_the_request_stays_approvable(
    make_settings: SettingsFactory, clock: FakeClock, peers: GrpcPeers
) -> None:
    down = make_settings(tools_grpc_addr=peers.tools_addr)
    async with serving(create_app(down, clock=clock)) as client:
        asked = (await chat(client, "search the vault")).json()
        shown = await chat(client, f"[MEMORY_SHOWN] {asked['request_id']}")
        assert shown.status_code == 503
        body = shown.json()
        assert body["status"] == "error"
        assert body["error"]["code"] == "dependency_unavailable"
        assert body["response"].startswith("Memory query failed: The memory service at http://")
        assert body["actions_taken"] == [body["response"]]
        metrics = (await client.get("/metrics")).text
        assert (
            'phoenix_orchestrator_grpc_errors_total{code="UNAVAILABLE",method="QueryMemory",'
            'service="memory"} 1.0' in metrics
        )
        listed = (await client.get("/v1/approvals", params={"session_id": "sess-1"})).json()
        assert [p["request_id"] for p in listed["pending"]] == [asked["request_id"]]

    up = make_settings(memory_grpc_addr=peers.memory_addr, tools_grpc_addr=peers.tools_addr)
    async with serving(create_app(up, clock=clock)) as client:
        shown = await chat(client, f"[MEMORY_SHOWN] {asked['request_id']}")
        assert shown.status_code == 200
        assert shown.json()["source_memories"] == ["mem-1", "mem-2"]


async def test_tools_down_is_a_503_with_a_clear_reply(
    make_settings: SettingsFactory, clock: FakeClock
) -> None:
    async with serving(create_app(make_settings(), clock=clock)) as client:
        await chat(client, "write a file")
        ran = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
        assert ran.status_code == 503
        assert ran.json()["response"].startswith("Tool 'command_exec' execution failed: The tools")
        assert ran.json()["actions_taken"] == ["Tool execution failed"]


async def test_tools_refusals_map_to_clear_status_codes(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    """A refusal is about the request: a chat reply (200, status error); a failure is a 502."""
    cases = [
        (grpc.StatusCode.PERMISSION_DENIED, 200, "forbidden_by_dependency"),
        (grpc.StatusCode.INVALID_ARGUMENT, 200, "rejected_by_dependency"),
        (grpc.StatusCode.INTERNAL, 502, "dependency_failed"),
    ]
    for code, status, error_code in cases:
        peers.tools.abort = (code, f"policy says no ({code.name})")
        await chat(client, "write a file")
        ran = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
        assert ran.status_code == status
        assert ran.json()["status"] == "error"
        assert ran.json()["error"]["code"] == error_code
        assert f"policy says no ({code.name})" in ran.json()["response"]


async def test_slow_tools_hit_the_deadline_and_get_a_504(
    make_settings: SettingsFactory, clock: FakeClock
) -> None:
    """A server that accepts the call but never answers: the deadline ends the wait."""
    release = asyncio.Event()

    class Silent(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, _: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            async def hang(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                await release.wait()
                return b""

            return grpc.unary_unary_rpc_method_handler(hang)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((Silent(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        settings = make_settings(
            tools_grpc_addr=f"http://127.0.0.1:{port}", tools_rpc_timeout_seconds=0.3
        )
        async with serving(create_app(settings, clock=clock)) as client:
            await chat(client, "write a file")
            ran = await chat(client, "[TOOL_EXECUTED] command_exec - CONFIRMED")
            assert ran.status_code == 504
            assert "did not answer within 0.3s" in ran.json()["response"]
    finally:
        release.set()
        await server.stop(None)


async def test_trace_context_flows_from_the_caller_to_memory(
    make_settings: SettingsFactory, peers: GrpcPeers, clock: FakeClock
) -> None:
    """With tracing configured: one server span per request, a child of the caller's."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = make_settings(memory_grpc_addr=peers.memory_addr, tools_grpc_addr=peers.tools_addr)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with serving(create_app(settings, clock=clock, tracer_provider=provider)) as client:
        asked = (await chat(client, "search the vault")).json()
        await client.post(
            "/chat",
            json={"message": f"[MEMORY_SHOWN] {asked['request_id']}", **SESSION},
            headers={"traceparent": traceparent},
        )
        await client.get("/health")
    sent = peers.memory.metadata[0]["traceparent"]
    assert sent.split("-")[1] == trace_id
    spans = exporter.get_finished_spans()
    assert [span.kind for span in spans] == [SpanKind.SERVER, SpanKind.SERVER]  # not /health
    approved = spans[1]
    assert approved.context is not None
    assert approved.parent is not None
    assert f"{approved.context.trace_id:032x}" == trace_id
    assert f"{approved.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert sent.split("-")[2] == f"{approved.context.span_id:016x}"


async def test_without_a_tracer_provider_nothing_is_traced(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    """The default (no OTLP endpoint): no spans, so no trace context is sent downstream."""
    asked = (await chat(client, "search the vault")).json()
    await client.post(
        "/chat",
        json={"message": f"[MEMORY_SHOWN] {asked['request_id']}", **SESSION},
        headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    assert "traceparent" not in peers.memory.metadata[0]


async def test_an_agent_step_is_a_span_of_a_traced_request_only(
    make_settings: SettingsFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A traced request's step is its child span; an untraced request makes no step span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The loop's tracer, from this provider whether or not the request is traced.
    monkeypatch.setattr(loop, "tracer", provider.get_tracer("phoenix_orchestrator.agent"))
    async with serving(create_app(make_settings(), clock=clock)) as client:
        assert (await chat(client, "hello")).status_code == 200
    assert exporter.get_finished_spans() == ()
    traced = create_app(make_settings(), clock=clock, tracer_provider=provider)
    async with serving(traced) as client:
        assert (await chat(client, "hello")).status_code == 200
    step, server = exporter.get_finished_spans()
    assert (step.name, server.kind) == ("agent step", SpanKind.SERVER)
    assert step.attributes is not None
    assert step.attributes["phoenix.agent.step"] == 1
    assert step.attributes["phoenix.agent.outcome"] == "respond"
    assert step.parent is not None
    assert server.context is not None
    assert step.parent.span_id == server.context.span_id
