"""The original's React UI, unchanged, against the gateway (original-system.md §4, §9).

By default (authentication on) it is refused in a way it can live with: the
socket is never accepted, so it stops after its five attempts. With the local
no-auth mode and its origin allowed, every flow works: chat, memory shown and
denied, tool executed and denied, and telemetry, with exactly one frame per
message and the CORS header its EventSource needs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from phoenix_gateway.app import create_app
from phoenix_gateway.settings import GatewaySettings
from tests.gateway.conftest import KEY_A, Gateway
from tests.gateway.original_ui import UI_ORIGIN, OriginalUI
from tests.gateway.servers import FakeOrchestrator, fake_telemetry_app, serve


@pytest.fixture
async def local_gateway(settings_for: Callable[..., GatewaySettings]) -> AsyncIterator[Gateway]:
    """The gateway as a developer runs it for the original UI on :3000."""
    orchestrator = FakeOrchestrator()
    async with (
        serve(orchestrator.app()) as orchestrator_url,
        serve(fake_telemetry_app(events=3, interval=0.05)) as telemetry_url,
    ):
        settings = settings_for(
            orchestrator_url=orchestrator_url,
            telemetry_url=telemetry_url,
            host="127.0.0.1",
            local_no_auth=True,
            cors_origins=UI_ORIGIN,
        )
        async with serve(create_app(settings)) as url:
            yield Gateway(url, orchestrator)


def ui_for(gateway: Gateway, origin: str = UI_ORIGIN) -> OriginalUI:
    return OriginalUI(
        ws_url=f"{gateway.ws_url}/ws/chat",
        sse_url=f"{gateway.url}/v1/telemetry/stream",
        origin=origin,
    )


async def test_against_the_default_gateway_the_ui_gives_up_after_five_attempts(
    gateway: Gateway,
) -> None:
    """Before: accepted then closed (1008), the counter reset, a retry every 3 s for ever."""
    ui = ui_for(gateway)
    assert await ui.open(reconnect_delay=0) is False
    assert (ui.attempts, ui.opened) == (5, 0)
    assert gateway.orchestrator.chats == []


async def test_against_the_default_gateway_telemetry_needs_a_credential(gateway: Gateway) -> None:
    response, data = await ui_for(gateway).first_metrics_event()
    assert response.status_code == 401
    assert data == ""
    assert "access-control-allow-origin" not in response.headers


async def test_the_ui_chats_with_one_reply_per_message(local_gateway: Gateway) -> None:
    ui = ui_for(local_gateway)
    assert await ui.open(reconnect_delay=0)
    replies = [await ui.say(f"hello {n}") for n in range(5)]
    await ui.close()
    assert [r["type"] for r in replies] == ["complete_message"] * 5
    assert [r["content"] for r in replies] == [
        f"I understand you said: 'hello {n}'." for n in range(5)
    ]
    sent = local_gateway.orchestrator.chats[0]
    assert (sent["twin_id"], sent["session_id"]) == (ui.user_id, ui.session_id)
    assert local_gateway.orchestrator.headers[0]["x-user-id"] == ui.user_id


async def test_the_ui_approves_and_denies_memory(local_gateway: Gateway) -> None:
    ui = ui_for(local_gateway)
    assert await ui.open(reconnect_delay=0)
    asked = await ui.say("search for incidents")
    command = asked["issued_command"]
    assert command["command"] == "show_memory_page"
    assert json.loads(asked["raw_orchestrator_decision"])["action_type"] == "ActionMemory"
    shown = await ui.approve(command)
    asked_again = await ui.say("search again")
    denied = await ui.deny(asked_again["issued_command"])
    await ui.close()
    assert shown["content"] == "Found 2 memory results"
    assert denied["type"] == "complete_message"
    assert [c["message"] for c in local_gateway.orchestrator.chats] == [
        "search for incidents",
        "[MEMORY_SHOWN] m-1",
        "search again",
        "[MEMORY_DENIED] m-1",
    ]


async def test_the_ui_executes_and_denies_a_tool(local_gateway: Gateway) -> None:
    ui = ui_for(local_gateway)
    assert await ui.open(reconnect_delay=0)
    command = {"command": "execute_tool", "tool_name": "command_exec", "arguments": {}}
    executed = await ui.approve(command)
    denied = await ui.deny(command)
    await ui.close()
    # The fake orchestrator answers every [TOOL_EXECUTED] as expired (HTTP 410, chat shape):
    # shown as a chat message, not as a raw error status.
    assert executed["type"] == "complete_message"
    assert executed["content"] == "Approval request 'r-1' (command_exec) expired."
    assert denied["type"] == "complete_message"
    assert [c["message"] for c in local_gateway.orchestrator.chats] == [
        "[TOOL_EXECUTED] command_exec - CONFIRMED",
        "[TOOL_DENIED] command_exec",
    ]


async def test_the_ui_reads_telemetry_across_origins(local_gateway: Gateway) -> None:
    response, data = await ui_for(local_gateway).first_metrics_event()
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    assert json.loads(data) == {"ts_ms": 0}


async def test_the_local_mode_refuses_other_origins_and_rebound_host_names(
    local_gateway: Gateway,
) -> None:
    """Any page the user opens could otherwise drive the twin: WebSockets ignore CORS."""
    evil = ui_for(local_gateway, origin="http://evil.example")
    assert await evil.open(reconnect_delay=0) is False
    response, _ = await evil.first_metrics_event()
    assert response.status_code == 403
    async with httpx.AsyncClient(base_url=local_gateway.url) as client:
        rebound = await client.post(
            "/api/chat",
            json={"message": "hi", "session_id": "s", "twin_id": "user_0123456789abcdef"},
            headers={"Host": "evil.example:8181"},
        )
        own = await client.post(
            "/api/chat",
            json={"message": "hi", "session_id": "s", "twin_id": "user_0123456789abcdef"},
        )
        nameless = await client.post("/api/chat", json={"message": "hi", "session_id": "s"})
    assert rebound.status_code == 403
    assert own.status_code == 200
    assert nameless.status_code == 422
    assert [c["twin_id"] for c in local_gateway.orchestrator.chats] == ["user_0123456789abcdef"]


async def test_the_local_mode_still_refuses_a_bad_credential(local_gateway: Gateway) -> None:
    url = f"{local_gateway.ws_url}/ws/chat/twin-a?token=wrong-key-0123456789abcdef"
    async with connect(url, origin=Origin(UI_ORIGIN)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    async with connect(f"{local_gateway.ws_url}/ws/chat/twin-b?token={KEY_A}") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()  # a key names its twin, in this mode too


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_the_local_mode_refuses_to_listen_beyond_loopback(
    settings_for: Callable[..., GatewaySettings], host: str
) -> None:
    with pytest.raises(ValidationError, match="refused unless GATEWAY_HOST is a loopback"):
        settings_for(host=host, local_no_auth=True)


def test_cors_origins_must_be_origins(settings_for: Callable[..., GatewaySettings]) -> None:
    settings = settings_for(cors_origins="http://localhost:3000, HTTPS://UI.example.com:8443/")
    assert settings.cors_origins == ("http://localhost:3000", "https://ui.example.com:8443")
    for bad in ("*", "localhost:3000", "http://localhost:3000/app", "ftp://x"):
        with pytest.raises(ValidationError, match=r"GATEWAY_CORS_ORIGINS|cors_origins"):
            settings_for(cors_origins=bad)


async def test_with_auth_on_an_allowed_origin_may_call_with_a_key(
    settings_for: Callable[..., GatewaySettings],
) -> None:
    orchestrator = FakeOrchestrator()
    async with serve(orchestrator.app()) as orchestrator_url:
        settings = settings_for(orchestrator_url=orchestrator_url, cors_origins=UI_ORIGIN)
        async with (
            serve(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            preflight = await client.options(
                "/api/chat",
                headers={
                    "Origin": UI_ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            foreign = await client.options(
                "/api/chat",
                headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
            )
            chat = await client.post(
                "/api/chat",
                json={"message": "hi", "session_id": "s"},
                headers={"Origin": UI_ORIGIN, "Authorization": f"Bearer {KEY_A}"},
            )
            anonymous = await client.post(
                "/api/chat",
                json={"message": "hi", "session_id": "s"},
                headers={"Origin": UI_ORIGIN},
            )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers
    assert chat.status_code == 200
    assert chat.headers["access-control-allow-origin"] == UI_ORIGIN
    assert anonymous.status_code == 401


async def test_a_ui_socket_refused_in_the_handshake_is_http_403(gateway: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{gateway.ws_url}/ws/chat/user_0123456789abcdef", origin=Origin(UI_ORIGIN))
    assert refused.value.response.status_code == 403
