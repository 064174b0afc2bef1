"""The whole platform over real processes: memory, tools, orchestrator, telemetry, gateway.

One stack per module (started by scripts/run_local.py's launcher on free ports),
with two stand-ins on 127.0.0.1 that the stack talks to: a chat-completions
server playing the LLM (so a test can ask for any shell command) and an OTLP
collector receiving every process's spans.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from phoenix_common.stubs import memory_pb2, memory_pb2_grpc
from scripts.run_local import LocalStack, Ports, StackConfig
from tests.gateway.original_ui import UI_ORIGIN, OriginalUI

TWIN = "twin-sentinel"  # the original's policy lets it run command_exec
OTHER_TWIN = "twin-trace"


def _memory_stub(channel: Any) -> Any:
    stub_class: Any = memory_pb2_grpc.MemoryServiceStub  # the generated stub is untyped
    return stub_class(channel)


def llm_decision(message: str) -> dict[str, Any]:
    """The fake LLM: ``run: <cmd>`` runs a shell command; otherwise the original's rules."""
    text = message.lower()
    if message.startswith("run: "):
        return {
            "action_type": "ActionTool",
            "details": {"tool_name": "command_exec", "args": {"cmd": message[5:]}},
        }
    if any(word in text for word in ("search", "find", "memory")):
        return {"action_type": "ActionMemory", "details": {"query": message}}
    return {"action_type": "ActionResponse", "details": {"content": f"You said: {message}"}}


class _LlmHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        reply = json.dumps(
            {
                "choices": [
                    {"message": {"role": "assistant", "content": json.dumps(llm_decision(user))}}
                ]
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector keeping (service, span name, trace id) of every span."""

    spans: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "?",
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((service, span.name, span.trace_id.hex()))
        return trace_service_pb2.ExportTraceServiceResponse()

    def services_in_trace(self, trace_id: str) -> set[str]:
        with self.lock:
            return {service for service, _, tid in self.spans if tid == trace_id}

    def traces_of(self, service: str, name_part: str) -> list[str]:
        with self.lock:
            return [tid for svc, name, tid in self.spans if svc == service and name_part in name]


@dataclass
class Stack:
    """The running stack and the handles a test needs."""

    launcher: LocalStack
    collector: Collector
    state_dir: Path

    @property
    def url(self) -> str:
        return self.launcher.config.gateway_url

    @property
    def key(self) -> str:
        return self.launcher.api_key

    def ws(self, twin: str = TWIN, token: str | None = None) -> str:
        base = self.url.replace("http://", "ws://")
        return f"{base}/ws/chat/{twin}?token={token if token is not None else self.key}"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    llm = ThreadingHTTPServer(("127.0.0.1", 0), _LlmHandler)
    threading.Thread(target=llm.serve_forever, daemon=True).start()
    collector = Collector()
    otlp = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    register: Any = trace_service_pb2_grpc.add_TraceServiceServicer_to_server  # untyped
    register(collector, otlp)
    otlp_port = otlp.add_insecure_port("127.0.0.1:0")
    otlp.start()
    state = Path(tempfile.mkdtemp(prefix="phoenix-e2e-"))
    # The sandbox runs as an unprivileged uid: its parent directories must be traversable.
    state.chmod(0o755)
    config = StackConfig(
        state_dir=state / "state",
        ports=Ports.free(),
        twin=TWIN,
        cwd=state,
        sandbox_dir=state / "sandbox",
        env={
            "LLM_PROVIDER": "openrouter",
            "OPENROUTER_API_KEY": "e2e-not-a-real-key",
            "OPENROUTER_URL": f"http://127.0.0.1:{llm.server_address[1]}/v1/chat/completions",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "TELEMETRY_INTERVAL_MS": "300",
        },
        output=lambda _: None,
    )
    launcher = LocalStack(config)
    try:
        with launcher:
            # A second twin's key in the same keys file, for the cross-twin tests.
            yield Stack(launcher, collector, state)
    finally:
        otlp.stop(0)
        llm.shutdown()
        llm.server_close()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def other_twin_key(stack: Stack) -> str:
    """A key for another twin, added to the gateway's keys file (restarting the gateway)."""
    keys_file = stack.launcher.config.keys_file
    keys = json.loads(keys_file.read_text())
    keys[OTHER_TWIN] = ["other-twin-key-0123456789abcdef"]
    keys_file.write_text(json.dumps(keys))
    stack.launcher.restart("gateway")
    return "other-twin-key-0123456789abcdef"


def frame(message: str, session: str, twin: str = TWIN) -> str:
    return json.dumps({"session_id": session, "user_id": twin, "message": message})


async def chat(ws: ClientConnection, message: str, session: str) -> dict[str, Any]:
    """Send one chat frame; its one reply (nothing else comes unasked)."""
    await ws.send(frame(message, session))
    received: dict[str, Any] = json.loads(await ws.recv())
    return received


# -- the HITL round trips ---------------------------------------------------------


async def test_a_memory_search_is_approved_and_returns_real_results(stack: Stack) -> None:
    ports = stack.launcher.config.ports
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ports.memory}") as channel:
        committed = await _memory_stub(channel).CommitMemory(
            memory_pb2.CommitMemoryRequest(
                content="Incident 4711: phoenix reactor overheated at dawn",
                namespace="default",
                twin_id=TWIN,
                memory_type="Episodic",
                risk_level="High",
            ),
            timeout=30,
        )
    assert committed.success, committed.error_message
    async with connect(stack.ws()) as ws:
        request = await chat(ws, "search for the reactor incident", "s-memory")
        command = request["issued_command"]
        assert command["command"] == "show_memory_page"
        assert json.loads(request["raw_orchestrator_decision"])["action_type"] == "ActionMemory"
        result = await chat(ws, f"[MEMORY_SHOWN] {command['memory_id']}", "s-memory")
    assert result["type"] == "complete_message"
    assert "phoenix reactor overheated" in result["content"]
    assert committed.memory_id in result["source_memories"]
    assert result["issued_command"] is None
    assert result["latency_ms"] > 0


async def test_a_tool_run_is_approved_and_its_output_comes_from_the_sandbox(
    stack: Stack,
) -> None:
    async with connect(stack.ws()) as ws:
        request = await chat(ws, "run: echo sandboxed-output; id -u", "s-tool")
        command = request["issued_command"]
        assert command == {
            **command,
            "command": "execute_tool",
            "tool_name": "command_exec",
            "arguments": {"cmd": "echo sandboxed-output; id -u"},
        }
        result = await chat(ws, "[TOOL_EXECUTED] command_exec - CONFIRMED", "s-tool")
    assert result["content"].startswith("Tool 'command_exec' executed successfully.")
    output = result["content"].split("Output:\n", 1)[1].splitlines()
    assert output[0] == "sandboxed-output"
    assert output[1] != "0"  # not root inside the sandbox


async def test_denied_requests_do_not_run(stack: Stack) -> None:
    async with connect(stack.ws()) as ws:
        memory = await chat(ws, "find my notes", "s-deny")
        memory_id = memory["issued_command"]["memory_id"]
        denied_memory = await chat(ws, f"[MEMORY_DENIED] {memory_id}", "s-deny")
        tool = await chat(ws, "run: touch /tmp/never", "s-deny")
        denied_tool = await chat(ws, "[TOOL_DENIED] command_exec", "s-deny")
        again = await chat(ws, "[TOOL_EXECUTED] command_exec - CONFIRMED", "s-deny")
    assert memory_id in denied_memory["content"]
    assert "denied" in denied_memory["content"]
    assert tool["issued_command"]["command"] == "execute_tool"
    assert denied_tool["content"] == "Tool 'command_exec' execution denied."
    assert "executed successfully" not in again["content"]


async def test_an_expired_approval_cannot_be_approved(stack: Stack) -> None:
    stack.launcher.restart("orchestrator", APPROVAL_TTL_SECONDS="1")
    try:
        async with connect(stack.ws()) as ws:
            request = await chat(ws, "run: echo too-late", "s-expired")
            assert request["issued_command"]["command"] == "execute_tool"
            await asyncio.sleep(1.5)  # the TTL itself is what is under test
            result = await chat(ws, "[TOOL_EXECUTED] command_exec - CONFIRMED", "s-expired")
    finally:
        stack.launcher.restart("orchestrator", APPROVAL_TTL_SECONDS="600")
    assert "expired" in result["content"]
    assert "too-late" not in result["content"]


async def test_a_pending_approval_survives_an_orchestrator_restart(stack: Stack) -> None:
    async with connect(stack.ws()) as ws:
        request = await chat(ws, "run: echo survived-restart", "s-restart")
    request_id = request["issued_command"]["request_id"]
    stack.launcher.restart("orchestrator")
    headers = {"Authorization": f"Bearer {stack.key}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30) as client:
        pending = await client.get("/api/approvals", params={"session_id": "s-restart"})
        approved = await client.post(
            f"/api/approvals/{request_id}/approve",
            json={"session_id": "s-restart", "actor": "e2e"},
        )
    assert [p["request_id"] for p in pending.json()["pending"]] == [request_id]
    assert approved.status_code == 200, approved.text
    assert "survived-restart" in approved.json()["response"]


# -- the edge: authentication and malformed frames ----------------------------------


async def test_unauthenticated_and_cross_twin_attempts_are_refused(
    stack: Stack, other_twin_key: str
) -> None:
    with pytest.raises(InvalidStatus) as anonymous_ws:
        await connect(stack.ws(token=""))  # no credential: refused in the handshake
    assert anonymous_ws.value.response.status_code == 403
    for url in (stack.ws(token="x" * 32), stack.ws(TWIN, other_twin_key)):
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    async with httpx.AsyncClient(base_url=stack.url) as client:
        anonymous = await client.post("/api/chat", json={"message": "hi", "session_id": "s"})
        cross = await client.post(
            "/api/chat",
            json={"message": "hi", "session_id": "s", "twin_id": TWIN},
            headers={"X-API-Key": other_twin_key},
        )
        own = await client.post(
            "/api/chat",
            json={"message": "hi", "session_id": "s"},
            headers={"X-API-Key": other_twin_key},
        )
    assert (anonymous.status_code, cross.status_code, own.status_code) == (401, 403, 200)


async def test_malformed_frames_get_error_frames_and_the_socket_stays_usable(
    stack: Stack,
) -> None:
    async with connect(stack.ws()) as ws:
        await ws.send("this is not json")
        invalid = json.loads(await ws.recv())
        await ws.send(frame("hi", "s-bad", twin="someone-else"))
        mismatch = json.loads(await ws.recv())
        reply = await chat(ws, "hello after errors", "s-bad")
    assert invalid["status"] == "error"
    assert invalid["details"].startswith("Invalid JSON payload:")
    assert mismatch["details"] == "User ID mismatch between path and request payload."
    assert reply["content"] == "You said: hello after errors"


async def test_telemetry_flows_through_the_gateway(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.key}"}
    async with (
        httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=10) as client,
        client.stream("GET", "/v1/telemetry/stream") as stream,
    ):
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                sample = json.loads(line.removeprefix("data:"))
                break
    assert sample["mem_total"] > sample["mem_used"] > 0


def test_no_process_logs_the_api_key(stack: Stack, other_twin_key: str) -> None:
    for name in ("memory", "tools", "orchestrator", "telemetry", "gateway"):
        log = stack.launcher.log(name)
        assert stack.key not in log, f"{name}'s log holds the API key"
        assert other_twin_key not in log, f"{name}'s log holds the other twin's key"
    spans = " ".join(name for _, name, _ in stack.collector.spans)
    assert stack.key not in spans


# -- the original's React UI, unchanged ------------------------------------------------


async def test_the_original_ui_works_in_every_flow_in_the_local_mode(stack: Stack) -> None:
    """Its protocol exactly (tests/gateway/original_ui.py), against every real process."""
    stack.launcher.restart("gateway", GATEWAY_LOCAL_NO_AUTH="true", GATEWAY_CORS_ORIGINS=UI_ORIGIN)
    try:
        base = stack.url
        # VITE_FORCE_TWIN_ID: the original's tool policy knows only its own twin ids.
        ui = OriginalUI(
            ws_url=base.replace("http://", "ws://") + "/ws/chat",
            sse_url=f"{base}/v1/telemetry/stream",
            user_id=TWIN,
        )
        assert await ui.open(reconnect_delay=0)
        hello = await ui.say("hello from the original UI")
        memory = await ui.say("search for the reactor incident")
        shown = await ui.approve(memory["issued_command"])
        memory_again = await ui.say("find my notes")
        memory_denied = await ui.deny(memory_again["issued_command"])
        tool = await ui.say("run: echo from-the-original-ui")
        executed = await ui.approve(tool["issued_command"])
        tool_again = await ui.say("run: touch never-run")
        tool_denied = await ui.deny(tool_again["issued_command"])
        nothing = await ui.say("[TOOL_EXECUTED] command_exec - CONFIRMED")
        await ui.close()
        response, first_event = await ui.first_metrics_event()
    finally:
        stack.launcher.restart("gateway", GATEWAY_LOCAL_NO_AUTH="false", GATEWAY_CORS_ORIGINS="")
    frames = [hello, memory, shown, memory_again, memory_denied, tool, executed, tool_again]
    assert all(f["type"] == "complete_message" for f in [*frames, tool_denied, nothing])
    assert hello["content"] == "You said: hello from the original UI"
    assert memory["issued_command"]["command"] == "show_memory_page"
    assert shown["content"].startswith("Found ")
    assert memory_denied["content"] == (
        f"Memory request '{memory_again['issued_command']['memory_id']}' denied."
    )
    assert executed["content"].startswith("Tool 'command_exec' executed successfully.")
    assert "from-the-original-ui" in executed["content"]
    assert tool_denied["content"] == "Tool 'command_exec' execution denied."
    assert nothing["content"] == "No pending tool request found to execute."
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    assert json.loads(first_event)["mem_total"] > 0


# -- tracing -------------------------------------------------------------------------


async def _trace_through(stack: Stack, service: str) -> set[str]:
    """The services of the first trace holding both a gateway span and one of ``service``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for trace_id in stack.collector.traces_of(service, ""):
            services = stack.collector.services_in_trace(trace_id)
            if "phoenix-gateway" in services:
                return services
        await asyncio.sleep(0.3)
    seen = sorted({svc for svc, _, _ in stack.collector.spans})
    pytest.fail(f"no trace spans phoenix-gateway -> {service}; services that sent spans: {seen}")


async def test_one_memory_chat_is_one_trace_from_the_gateway_to_memory(stack: Stack) -> None:
    async with connect(stack.ws()) as ws:
        memory = await chat(ws, "search anything", "s-trace")
        await chat(ws, f"[MEMORY_SHOWN] {memory['issued_command']['memory_id']}", "s-trace")
    services = await _trace_through(stack, "phoenix-memory")
    assert {"phoenix-gateway", "phoenix-orchestrator", "phoenix-memory"} <= services


async def test_one_tool_chat_is_one_trace_from_the_gateway_to_tools(stack: Stack) -> None:
    async with connect(stack.ws()) as ws:
        await chat(ws, "run: echo traced", "s-trace-tool")
        await chat(ws, "[TOOL_EXECUTED] command_exec - CONFIRMED", "s-trace-tool")
    services = await _trace_through(stack, "phoenix-tools")
    assert {"phoenix-gateway", "phoenix-orchestrator", "phoenix-tools"} <= services


# -- the console in a real browser ------------------------------------------------------


async def test_the_console_chats_approves_a_tool_and_charts_telemetry(stack: Stack) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = await browser.new_page()
            # localhost, as a person would type it: autologin needs a loopback host name.
            port = stack.launcher.config.ports.gateway
            await page.goto(f"http://localhost:{port}/")
            await expect(page.locator("#twin")).to_have_text(f"twin {TWIN}")
            await expect(page.locator("#connection")).to_have_text("online")
            await page.fill("#message", "run: echo from-the-console")
            await page.click("#send")
            dialog = page.locator("#approval-dialog")
            await expect(dialog).to_be_visible()
            await expect(page.locator("#decision")).to_contain_text('"ActionTool"')
            await expect(page.locator("#decision")).to_contain_text("echo from-the-console")
            await page.click("#approve")
            await expect(page.locator("#log li.twin").last).to_contain_text(
                "executed successfully", timeout=30_000
            )
            await expect(page.locator("#log li.twin").last).to_contain_text("from-the-console")
            canvas = page.locator("#telemetry-canvas")
            await expect(canvas).not_to_have_attribute("data-points", "0", timeout=15_000)
            await expect(page.locator("#telemetry-latest")).to_contain_text("CPU")
            await page.screenshot(path=str(stack.state_dir / "console.png"))
            shutil.copy(
                stack.state_dir / "console.png", Path(tempfile.gettempdir()) / "phoenix-console.png"
            )
        finally:
            await browser.close()
