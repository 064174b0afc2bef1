"""The chat socket: the original's frames, with authentication and the gateway's fixes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from phoenix_gateway.routes import chat_ws
from tests.gateway.conftest import KEY_A, KEY_B, Gateway


def frame(message: str, *, user_id: str = "twin-a", **extra: Any) -> str:
    return json.dumps({"session_id": "s-1", "user_id": user_id, "message": message, **extra})


async def reply(ws: ClientConnection) -> dict[str, Any]:
    """The next frame: the one reply to the frame just sent."""
    received: dict[str, Any] = json.loads(await ws.recv())
    return received


async def closed_with(url: str, **kwargs: Any) -> int | None:
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_a_chat_frame_gets_a_complete_message(gateway: Gateway) -> None:
    url = f"{gateway.ws_url}/ws/chat/twin-a"
    async with connect(url, additional_headers={"Authorization": f"Bearer {KEY_A}"}) as ws:
        await ws.send(frame("hello there"))
        answer = json.loads(await ws.recv())
    assert answer["type"] == "complete_message"
    assert answer["content"] == "I understand you said: 'hello there'."
    assert answer["is_final"] is True
    assert answer["issued_command"] is None
    assert "raw_orchestrator_decision" not in answer
    assert answer["source_memories"] == []
    assert isinstance(answer["latency_ms"], int)
    assert len(answer["id"]) == 36
    sent = gateway.orchestrator.chats[-1]
    assert sent == {
        "message": "hello there",
        "twin_id": "twin-a",
        "session_id": "s-1",
        "namespace": None,
    }
    assert gateway.orchestrator.headers[-1]["x-user-id"] == "twin-a"


async def test_latency_is_measured_not_zero(gateway: Gateway) -> None:
    gateway.orchestrator.delay = 0.15
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        await ws.send(frame("slow one"))
        answer = await reply(ws)
    assert answer["latency_ms"] >= 150


async def test_namespace_is_passed_through(gateway: Gateway) -> None:
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        await ws.send(frame("hi", namespace="threat_intel_v24"))
        await reply(ws)
    assert gateway.orchestrator.chats[-1]["namespace"] == "threat_intel_v24"


async def test_hitl_command_and_memory_ids_reach_the_ui(gateway: Gateway) -> None:
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        await ws.send(frame("search for incidents"))
        request = await reply(ws)
        await ws.send(frame("[MEMORY_SHOWN] m-1"))
        result = await reply(ws)
    assert request["issued_command"]["command"] == "show_memory_page"
    assert json.loads(request["raw_orchestrator_decision"])["action_type"] == "ActionMemory"
    assert request["source_memories"] == []  # actions_taken are not memories (defect 21)
    assert result["source_memories"] == ["mem-a", "mem-b"]
    assert result["issued_command"] is None


async def test_invalid_json_gets_an_error_frame_and_the_socket_stays_usable(
    gateway: Gateway,
) -> None:
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        await ws.send("{not json")
        error = json.loads(await ws.recv())
        await ws.send(json.dumps({"session_id": "s-1", "user_id": "twin-a"}))
        missing = json.loads(await ws.recv())
        await ws.send(b"\x00\x01")
        binary = json.loads(await ws.recv())
        await ws.send(frame("still here?"))
        answer = await reply(ws)
    assert error["type"] == "status_update"
    assert error["status"] == "error"
    assert error["details"].startswith("Invalid JSON payload: ")
    assert "message" in missing["details"]
    assert binary["details"] == "Invalid JSON payload: binary frames are not supported"
    assert answer["content"] == "I understand you said: 'still here?'."


async def test_user_id_mismatch_gets_the_original_error(gateway: Gateway) -> None:
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        await ws.send(frame("hi", user_id="twin-b"))
        error = json.loads(await ws.recv())
        await ws.send(frame("hi"))
        answer = await reply(ws)
    assert error == {
        "type": "status_update",
        "status": "error",
        "details": "User ID mismatch between path and request payload.",
    }
    assert answer["type"] == "complete_message"
    assert all(chat["twin_id"] == "twin-a" for chat in gateway.orchestrator.chats)


async def test_orchestrator_errors_become_error_frames(gateway: Gateway) -> None:
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        await ws.send(frame("dependency down"))
        error = await reply(ws)
    assert error["status"] == "error"
    assert error["details"].startswith("Orchestrator error: Orchestrator returned error status 503")


async def test_error_replies_in_the_chat_shape_are_shown_as_messages(gateway: Gateway) -> None:
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        await ws.send(frame("[TOOL_EXECUTED] command_exec - CONFIRMED"))
        answer = await reply(ws)
    assert answer["type"] == "complete_message"
    assert answer["status"] == "error"
    assert answer["content"] == "Approval request 'r-1' (command_exec) expired."
    assert answer["error"]["code"] == "approval_expired"


async def test_every_message_gets_exactly_one_reply_in_order(gateway: Gateway) -> None:
    """A client pairing one reply with each message (as the original's do) stays in step."""
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
        for index in range(20):
            await ws.send(frame(f"message {index}"))
        replies = [json.loads(await ws.recv()) for _ in range(20)]
        await ws.send(frame("[TOOL_EXECUTED] command_exec - CONFIRMED"))
        error_reply = json.loads(await ws.recv())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await ws.recv()  # nothing unsolicited follows
    assert [r["content"] for r in replies] == [
        f"I understand you said: 'message {index}'." for index in range(20)
    ]
    assert error_reply["type"] == "complete_message"


async def test_a_busy_status_before_each_reply_is_opt_in(gateway: Gateway) -> None:
    async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}&busy=true") as ws:
        frames = []
        for index in range(3):
            await ws.send(frame(f"m{index}"))
            frames += [json.loads(await ws.recv()), json.loads(await ws.recv())]
        await ws.send("{not json")
        invalid = json.loads(await ws.recv())  # refused before any work: no busy first
    busy = {"type": "status_update", "status": "busy", "details": ""}
    assert frames[0::2] == [busy] * 3
    assert [f["content"] for f in frames[1::2]] == [
        f"I understand you said: 'm{i}'." for i in range(3)
    ]
    assert invalid["status"] == "error"


async def test_a_socket_without_any_credential_is_refused_in_the_handshake(
    gateway: Gateway,
) -> None:
    """Never accepted, so a browser counts a failed attempt (the original UI gives up after 5)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{gateway.ws_url}/ws/chat/twin-a"):
            pass
    assert refused.value.response.status_code == 403
    assert gateway.orchestrator.chats == []


@pytest.mark.parametrize(
    "credentials",
    [
        {"additional_headers": {"Authorization": "Bearer wrong-key-0123456789abcdef"}},
        {"additional_headers": {"X-API-Key": KEY_A[:-1]}},
    ],
    ids=["wrong", "truncated"],
)
async def test_sockets_with_an_invalid_credential_are_closed_with_1008(
    gateway: Gateway, credentials: dict[str, Any]
) -> None:
    code = await closed_with(f"{gateway.ws_url}/ws/chat/twin-a", **credentials)
    assert code == 1008
    assert gateway.orchestrator.chats == []


async def test_a_key_for_one_twin_never_reaches_another(gateway: Gateway) -> None:
    code = await closed_with(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_B}")
    assert code == 1008
    # ...and with its own path, twin B's key cannot speak as twin A inside the frame.
    async with connect(f"{gateway.ws_url}/ws/chat/twin-b?token={KEY_B}") as ws:
        await ws.send(frame("hi", user_id="twin-a"))
        error = json.loads(await ws.recv())
    assert error["details"] == "User ID mismatch between path and request payload."
    assert gateway.orchestrator.chats == []


async def test_parallel_sockets_each_get_their_own_replies(gateway: Gateway) -> None:
    """Sockets share the upstream connection pool; no reply reaches another socket."""
    gateway.orchestrator.delay = 0.002

    async def one_socket(socket: int) -> list[str]:
        async with connect(f"{gateway.ws_url}/ws/chat/twin-a?token={KEY_A}") as ws:
            contents = []
            for n in range(25):
                await ws.send(frame(f"s{socket} m{n}"))
                contents.append((await reply(ws))["content"])
            return contents

    results = await asyncio.gather(*(one_socket(s) for s in range(6)))
    for socket, contents in enumerate(results):
        assert contents == [f"I understand you said: 's{socket} m{n}'." for n in range(25)]
    assert len(gateway.orchestrator.chats) == 150


async def test_a_broken_stream_is_an_error_frame_and_the_socket_stays_usable(
    gateway: Gateway,
) -> None:
    url = f"{gateway.ws_url}/ws/chat/twin-a?stream=true&token={KEY_A}"
    async with connect(url) as ws:
        await ws.send(frame("garbled stream"))
        garbled = [await reply(ws), await reply(ws)]
        await ws.send(frame("cut stream"))
        cut = [await reply(ws), await reply(ws)]
        await ws.send(frame("still here?"))  # answered whole: an orchestrator that never streams
        after = await reply(ws)
    for chunk, error in (garbled, cut):
        assert (chunk["type"], chunk["content_chunk"]) == ("message_chunk", "Hel")
        assert (error["type"], error["status"]) == ("status_update", "error")
    assert garbled[1]["details"].startswith("Orchestrator error: the streamed reply broke off")
    assert cut[1]["details"] == "Orchestrator error: the streamed reply ended without a result"
    assert after["content"] == "I understand you said: 'still here?'."


def test_a_frame_is_a_root_span_when_tracing_is_on_and_none_when_it_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with chat_ws._frame_span("twin-a") as span:
        assert span is trace.INVALID_SPAN  # no SDK provider: no span at all
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(chat_ws, "tracer", provider.get_tracer("phoenix_gateway.chat"))
    with (
        provider.get_tracer("t").start_as_current_span("socket"),
        chat_ws._frame_span("twin-a") as span,
    ):
        assert span.is_recording()
    frame = next(s for s in exporter.get_finished_spans() if s.name == "chat frame")
    assert frame.parent is None  # its own trace, not the socket's
    assert frame.kind == trace.SpanKind.SERVER
    assert frame.attributes is not None
    assert frame.attributes["phoenix.twin"] == "twin-a"
