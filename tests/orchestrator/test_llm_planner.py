"""The LLM planner against a local chat-completions server: success, failures, fallback."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from phoenix_orchestrator.app import create_app
from tests.orchestrator.conftest import (
    FakeClock,
    FakeLLM,
    GrpcPeers,
    Reply,
    SettingsFactory,
    completion,
    serving,
)

API_KEY = "sk-or-test-abcdef"
SESSION = {"twin_id": "twin-aegis", "session_id": "sess-llm"}
TOOL_DECISION = json.dumps(
    {
        "action_type": "ActionTool",
        "details": {"tool_name": "command_exec", "args": {"cmd": "uptime"}},
    }
)

Orchestrator = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def orchestrator(
    make_settings: SettingsFactory, fake_llm: FakeLLM, clock: FakeClock, peers: GrpcPeers
) -> Orchestrator:
    """An orchestrator planning through ``fake_llm``; keyword arguments override settings."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        values: dict[str, Any] = {
            "llm_provider": "openrouter",
            "openrouter_api_key": API_KEY,
            "openrouter_url": fake_llm.url,
            "openrouter_model": "test/model",
            "llm_timeout_seconds": 2.0,
            "llm_max_attempts": 2,
            "llm_retry_backoff_seconds": 0,
            "memory_grpc_addr": peers.memory_addr,
            "tools_grpc_addr": peers.tools_addr,
        }
        values.update(overrides)
        return serving(create_app(make_settings(**values), clock=clock))

    return start


async def chat(client: httpx.AsyncClient, message: str) -> httpx.Response:
    return await client.post("/chat", json={"message": message, **SESSION})


async def test_llm_decision_asks_for_json_schema_and_parks_the_tool(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [completion(TOOL_DECISION)]
    async with orchestrator() as client:
        reply = await chat(client, "how long has the box been up?")
    assert reply.status_code == 200
    body = reply.json()
    assert body["planner"] == "llm"
    assert "planner_error" not in body
    assert body["raw_orchestrator_decision"] == TOOL_DECISION
    assert body["issued_command"]["arguments"] == {"cmd": "uptime"}

    [sent] = fake_llm.requests
    assert sent["model"] == "test/model"
    assert sent["temperature"] == 0.1
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["anyOf"]
    assert sent["messages"][0]["role"] == "system"
    assert "twin-aegis" in sent["messages"][0]["content"]
    assert sent["messages"][1] == {"role": "user", "content": "how long has the box been up?"}
    assert fake_llm.headers[0]["Authorization"] == f"Bearer {API_KEY}"
    assert "HTTP-Referer" not in fake_llm.headers[0]


async def test_fenced_json_is_accepted(orchestrator: Orchestrator, fake_llm: FakeLLM) -> None:
    content = '```json\n{"action_type":"ActionResponse","details":{"content":"Hi!"}}\n```'
    fake_llm.script = [completion(content)]
    async with orchestrator() as client:
        body = (await chat(client, "hello")).json()
    assert body["response"] == "Hi!"
    assert body["planner"] == "llm"


async def test_malformed_output_falls_back_visibly(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [completion('{"action_type": "ActionTool", "details": {"tool_name": 7')]
    async with orchestrator() as client:
        body = (await chat(client, "search the vault")).json()
        metrics = (await client.get("/metrics")).text
    assert body["planner"] == "deterministic-fallback"
    assert "not a valid LLMAction" in body["planner_error"]
    assert body["actions_taken"][0].startswith("llm_planning_failed: deterministic planner used")
    assert body["issued_command"]["command"] == "show_memory_page"
    assert len(fake_llm.requests) == 1  # invalid output is not retried
    assert 'phoenix_orchestrator_llm_fallbacks_total{reason="invalid_output"} 1.0' in metrics


async def test_unsupported_variant_from_the_llm_is_invalid_output(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    """Defect 9: ActionSelfImprove is not a decision the orchestrator accepts."""
    fake_llm.script = [
        completion('{"action_type":"ActionSelfImprove","details":{"new_prompt":"x"}}')
    ]
    async with orchestrator() as client:
        body = (await chat(client, "improve yourself")).json()
    assert body["planner"] == "deterministic-fallback"
    assert body["response"] == "I understand you said: 'improve yourself'."


async def test_timeouts_are_retried_then_fall_back(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [Reply(delay=3), Reply(delay=3)]
    async with orchestrator(llm_timeout_seconds=0.3) as client:
        body = (await chat(client, "hello")).json()
        metrics = (await client.get("/metrics")).text
    assert len(fake_llm.requests) == 2
    assert body["planner"] == "deterministic-fallback"
    assert body["planner_error"] == "the LLM did not answer within 0.3s (after 2 attempt(s))"
    assert 'phoenix_orchestrator_llm_fallbacks_total{reason="timeout"} 1.0' in metrics


async def test_server_errors_are_retried_and_a_later_success_wins(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [Reply(503, {"error": {"message": "overloaded"}}), completion(TOOL_DECISION)]
    async with orchestrator() as client:
        body = (await chat(client, "uptime?")).json()
    assert len(fake_llm.requests) == 2
    assert body["planner"] == "llm"


async def test_persistent_server_errors_fall_back(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.default = Reply(500, {"error": {"message": "boom"}})
    async with orchestrator(llm_max_attempts=3) as client:
        body = (await chat(client, "hello")).json()
    assert len(fake_llm.requests) == 3
    assert body["planner_error"] == "the LLM endpoint answered HTTP 500 (after 3 attempt(s))"


async def test_rejected_json_schema_switches_to_json_object(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    rejected = Reply(400, {"error": {"message": "response_format json_schema is not supported"}})
    fake_llm.script = [rejected, completion(TOOL_DECISION), completion(TOOL_DECISION)]
    async with orchestrator() as client:
        first = (await chat(client, "uptime?")).json()
        second = (await chat(client, "uptime again?")).json()
    assert first["planner"] == second["planner"] == "llm"
    formats = [r["response_format"]["type"] for r in fake_llm.requests]
    assert formats == ["json_schema", "json_object", "json_object"]


async def test_other_client_errors_are_not_retried(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [Reply(401, {"error": {"message": "No auth credentials found"}})]
    async with orchestrator() as client:
        body = (await chat(client, "hello")).json()
    assert len(fake_llm.requests) == 1
    assert body["planner_error"] == "the LLM endpoint answered HTTP 401: No auth credentials found"


async def test_without_fallback_an_llm_failure_is_a_503(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.default = Reply(502, {"error": {"message": "bad gateway"}})
    async with orchestrator(llm_fallback_to_deterministic=False) as client:
        reply = await chat(client, "hello")
    assert reply.status_code == 503
    body = reply.json()
    assert body["status"] == "error"
    assert body["actions_taken"] == ["llm_planning_failed"]
    assert body["response"].startswith("Orchestrator LLM planning failed: the LLM endpoint")
    assert body["error"]["code"] == "llm_unavailable"


async def test_unreachable_llm_falls_back(make_settings: SettingsFactory, clock: FakeClock) -> None:
    settings = make_settings(
        llm_provider="openai",
        openrouter_api_key=API_KEY,
        openrouter_url="http://127.0.0.1:9/v1/chat/completions",
        llm_max_attempts=1,
    )
    async with serving(create_app(settings, clock=clock)) as client:
        body = (await chat(client, "hello")).json()
    assert body["planner"] == "deterministic-fallback"
    assert body["planner_error"].startswith("cannot reach the LLM endpoint")


async def test_unsupported_tool_is_refused_without_approval(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [
        completion('{"action_type":"ActionTool","details":{"tool_name":"rm_rf","args":{}}}')
    ]
    async with orchestrator() as client:
        body = (await chat(client, "delete everything")).json()
        pending = (await client.get("/v1/approvals", params={"session_id": "sess-llm"})).json()
    assert body["response"] == (
        "Tool 'rm_rf' is not available. Supported tools: command_exec, file_write, vector_query."
    )
    assert body["actions_taken"] == ["unsupported_tool_requested"]
    assert "issued_command" not in body
    assert pending["pending"] == []


async def test_the_api_key_and_prompt_never_reach_the_logs(
    orchestrator: Orchestrator, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.script = [Reply(500, {"error": {"message": "x"}}), Reply(401, {})]
    caplog.set_level(logging.DEBUG)
    async with orchestrator() as client:
        await chat(client, "my secret plan is purple-elephant")
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert API_KEY not in logged
    assert "purple-elephant" not in logged


async def test_incomplete_tool_call_is_refused_without_approval(
    orchestrator: Orchestrator, fake_llm: FakeLLM
) -> None:
    fake_llm.script = [
        completion(
            '{"action_type":"ActionTool","details":{"tool_name":"file_write",'
            '"args":{"path":"a.txt"}}}'
        )
    ]
    async with orchestrator() as client:
        body = (await chat(client, "write something")).json()
    assert body["actions_taken"] == ["incomplete_tool_arguments"]
    assert "content" in body["response"]
    assert "issued_command" not in body
