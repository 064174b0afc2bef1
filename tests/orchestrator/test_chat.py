"""POST /chat and GET /health: shapes, status codes and the deterministic planner end to end."""

from __future__ import annotations

import json

import httpx
import pytest

from phoenix_orchestrator.app import create_app
from tests.orchestrator.conftest import FakeClock, GrpcPeers, SettingsFactory


async def test_health_reports_ok(client: httpx.AsyncClient) -> None:
    reply = await client.get("/health")
    assert reply.status_code == 200
    assert reply.json() == {"service": "phoenix-orchestrator", "status": "ok", "version": "0.1.0"}


async def test_plain_message_is_answered_directly(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/chat", json={"message": "Hello", "twin_id": "twin-aegis", "session_id": "s1"}
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["response"] == "I understand you said: 'Hello'."
    assert body["status"] == "completed"
    assert body["actions_taken"] == ["Direct response generated"]
    assert body["planner"] == "deterministic"
    assert body["job_id"]
    assert "issued_command" not in body
    assert "raw_orchestrator_decision" not in body


async def test_date_question_is_answered_by_the_builtin(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/chat", json={"message": "what date is it?", "twin_id": "t", "session_id": "s"}
    )
    body = reply.json()
    assert body["response"].startswith("Today's date is 2026-03-1")
    assert body["actions_taken"] == ["Direct response generated (builtin)"]
    assert json.loads(body["raw_orchestrator_decision"])["action_type"] == "ActionResponse"
    assert body["planner"] == "builtin"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"message": "", "twin_id": "t", "session_id": "s"}, "message"),
        ({"message": "hi", "session_id": "s"}, "twin_id"),
        ({"message": "hi", "twin_id": "t", "session_id": "s", "namespace": 3}, "namespace"),
        ({"message": "x" * 32_001, "twin_id": "t", "session_id": "s"}, "message"),
    ],
)
async def test_bad_bodies_get_422_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, object], field: str
) -> None:
    reply = await client.post("/chat", json=payload)
    assert reply.status_code == 422
    body = reply.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "invalid_input"
    assert field in body["response"]
    assert any(field in detail["loc"] for detail in body["error"]["details"])


async def test_malformed_json_gets_422_not_500(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/chat", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "invalid_input"


async def test_config_replies_are_handled_not_planned(
    client: httpx.AsyncClient, peers: GrpcPeers
) -> None:
    """Defect 12: [CONFIG_RESPONSE] no longer reaches the planner as plain text."""
    for message in ("[CONFIG_RESPONSE] api_key=abc", "[CONFIG_DENIED] api_key"):
        reply = await client.post(
            "/chat", json={"message": message, "twin_id": "t", "session_id": "s"}
        )
        assert reply.status_code == 200
        assert reply.json()["actions_taken"] == ["config_response_ignored"]
        assert "issued_command" not in reply.json()
    assert peers.memory.requests == []
    assert peers.tools.requests == []


async def test_metrics_count_requests_and_decisions(client: httpx.AsyncClient) -> None:
    await client.post("/chat", json={"message": "hi", "twin_id": "t", "session_id": "s"})
    await client.post("/chat", json={"message": "search x", "twin_id": "t", "session_id": "s"})
    text = (await client.get("/metrics")).text
    assert (
        'phoenix_orchestrator_decisions_total{action_type="ActionResponse",planner="deterministic"}'
        " 1.0" in text
    )
    assert (
        'phoenix_orchestrator_decisions_total{action_type="ActionMemory",planner="deterministic"}'
        " 1.0" in text
    )
    assert 'phoenix_orchestrator_requests_total{route="/chat",status_code="200"} 2.0' in text


async def test_unexpected_errors_are_a_generic_500_without_internals(
    make_settings: SettingsFactory, clock: FakeClock
) -> None:
    app = create_app(make_settings(), clock=clock)

    class Broken:
        async def chat(self, *_: object, **__: object) -> None:
            raise RuntimeError("secret internal detail")

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://orchestrator",
        ) as client,
    ):
        app.state.chat = Broken()
        reply = await client.post(
            "/chat", json={"message": "hi", "twin_id": "t", "session_id": "s"}
        )
    assert reply.status_code == 500
    assert reply.json()["error"] == {"code": "internal", "message": "Internal server error"}
    assert "secret internal detail" not in reply.text
